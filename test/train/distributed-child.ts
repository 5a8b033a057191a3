// Run under mpirun by distributed-collectives.test.ts (not a test file itself): each rank exercises the
// MPI collectives and prints one JSON line of what it got. `abort` mode: rank 1 aborts the job while
// rank 0 waits in a barrier.

import { getBackend } from '../../src/backends/registry.js';
import { allGatherJson, allReduceViewSum, broadcastNumber } from '../../src/train/distributed/collective.js';
import { MpiCollective } from '../../src/train/distributed/mpi.js';

const g = new MpiCollective();
const mode = process.argv[2] ?? 'collectives';
if (mode === 'abort') {
  if (g.rank === 1) g.abort(3, `rank ${g.rank} gives up`);
  g.barrier();
  g.finalize();
} else {
  const r = g.rank;
  const f32 = new Float32Array([r + 1, 0.25 * r, -r, 1e-3]);
  g.allReduce(f32, 'sum');
  const f64max = new Float64Array([r, -r, 10 * r + 0.5]);
  g.allReduce(f64max, 'max');
  const f64min = new Float64Array([r, -r, 10 * r + 0.5]);
  g.allReduce(f64min, 'min');
  const bcast = new Float64Array([r * 100 + 7, r]);
  g.broadcast(bcast, g.size - 1);
  const bytes = g.allGather(new Uint8Array(Array.from({ length: r + 1 }, (_, i) => r * 10 + i)));
  const json = allGatherJson(g, { rank: r, text: 'é'.repeat(r) });
  const root = broadcastNumber(g, r === 0 ? 42.5 : -1);
  const backend = getBackend(process.env['VERA_BACKEND'] === 'js' ? 'js' : 'native');
  const buf = backend.alloc('f32', 6);
  backend.upload(buf, 'f32', 0, new Float32Array([1, 2, 3, 4, 5, 6].map((x) => x * (r + 1))));
  // The last 4 elements only: a view at an offset.
  allReduceViewSum(g, backend, { buf, dtype: 'f32', offset: 2, shape: [4], strides: [1] });
  const view = Array.from(backend.download({ buf, dtype: 'f32', offset: 0, shape: [6], strides: [1] }) as Float32Array);
  let badOp = '';
  try {
    g.allReduce(new Float64Array(1), 'prod' as 'sum');
  } catch (e) {
    badOp = (e as Error).message;
  }
  g.barrier();
  const out = {
    rank: r,
    size: g.size,
    library: g.library,
    f32: Array.from(f32),
    f64max: Array.from(f64max),
    f64min: Array.from(f64min),
    bcast: Array.from(bcast),
    bytes: bytes.map((b) => Array.from(b)),
    json,
    root,
    view,
    badOp,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  g.finalize();
}
