// GEMM benchmark: the engine's matmul (ops.matmul on tensors, output allocation and the JS call
// included) on the native backend, against oneDNN called directly from C++, the faster of its GEMM API
// and its matmul primitive (bench/gemm/dnnl_sgemm_peer.cc). Both sides: row-major C = A·B, random
// inputs, median of ≥ 7 timed runs after warm-up, 1 and 2 threads; in float32, and in bf16 (ours: an
// f32 A rounded by the kernel, included in the time, times a bf16 B; the peer: bf16 A and B, their
// conversion not timed).
// Shapes: 1024³, and M=4096, K=768, N=3072 (GPT-2-small's MLP up-projection over 4096 tokens:
// activations [4096, 768] times weight [768, 3072]).

import type { Backend } from '../src/backends/backend.js';
import * as ops from '../src/ops/index.js';
import { tensor } from '../src/tensor/creation.js';
import { bf16ToF32, f32ToBf16 } from '../src/backends/dtype.js';
import { type BackendName, getBackend } from '../src/backends/registry.js';
import { type BenchRow, buildPeerBinary, emit, note, runPeer, threadEnv, timeIt } from './lib.js';

const SHAPES: readonly { m: number; n: number; k: number }[] = [
  { m: 1024, n: 1024, k: 1024 },
  { m: 4096, n: 3072, k: 768 },
];
const THREADS: readonly number[] = [1, 2];
const RUNS = 9;
/** The backend measured as "ours": native unless VERA_BENCH_BACKEND says otherwise (js, for comparison). */
const BACKEND = (process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName;

/** Deterministic uniform [-1, 1) floats (an LCG: fast, and no zeros or structure to exploit). */
function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Largest relative error of sampled entries of C = A·B against a float64 reference. */
function checkSamples(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): number {
  let worst = 0;
  for (let s = 0; s < 32; s++) {
    const i = (s * 7919) % m;
    const j = (s * 104729 + 17) % n;
    let ref = 0;
    let mag = 0;
    for (let p = 0; p < k; p++) {
      const t = a[i * k + p]! * b[p * n + j]!;
      ref += t;
      mag += Math.abs(t);
    }
    worst = Math.max(worst, Math.abs(c[i * n + j]! - ref) / (mag + 1e-30));
  }
  return worst;
}

interface Ours {
  gflops: number | null;
  median_ms: number | null;
  error?: string;
}

/** The values rounded to bf16 and back (what a bf16 GEMM multiplies). */
const roundBf16 = (x: Float32Array): Float32Array => Float32Array.from(x, (v) => bf16ToF32(f32ToBf16(v)));

/** C = A·B through the tensor front end (ops.matmul: output allocation and the JS call included). */
async function measureOurs(
  be: Backend,
  m: number,
  n: number,
  k: number,
  threads: number,
  dtype: 'f32' | 'bf16',
): Promise<Ours> {
  const ha = randomF32(m * k, 1);
  const hb = randomF32(k * n, 2);
  const a = tensor(ha, { shape: [m, k], backend: be });
  const b32 = tensor(hb, { shape: [k, n], backend: be });
  const b = dtype === 'bf16' ? ops.cast(b32, 'bf16') : b32;
  const prevThreads = be.getThreads?.() ?? 1;
  try {
    be.setThreads?.(threads);
    const t = await timeIt(
      () => {
        const c = ops.matmul(a, b);
        be.sync();
        c.dispose();
      },
      { warmup: 3, runs: RUNS },
    );
    const c = ops.matmul(a, b);
    const [ra, rb] = dtype === 'bf16' ? [roundBf16(ha), roundBf16(hb)] : [ha, hb];
    const err = checkSamples(ra, rb, c.toArray() as Float32Array, m, n, k);
    c.dispose();
    if (!(err <= 1e-5)) return { gflops: null, median_ms: null, error: `wrong result: max relative error ${err}` };
    return { gflops: (2 * m * n * k) / (t.median_ms * 1e-3) / 1e9, median_ms: t.median_ms };
  } finally {
    be.setThreads?.(prevThreads);
    a.dispose();
    b.dispose();
    if (b !== b32) b32.dispose();
  }
}

export async function run(): Promise<BenchRow[]> {
  let be: Backend | null = null;
  let oursError: string | undefined;
  try {
    be = getBackend(BACKEND);
  } catch (e) {
    oursError = `${BACKEND} backend unavailable: ${e instanceof Error ? e.message : String(e)}`;
    note(oursError);
  }
  const peerBin = buildPeerBinary('bench/gemm/dnnl_sgemm_peer.cc', 'dnnl_sgemm_peer', [
    '-O3',
    '-march=native',
    '-fopenmp',
    '-ldnnl',
  ]);
  if (!peerBin.ok) note(`peer unavailable: ${peerBin.reason}`);

  const rows: BenchRow[] = [];
  for (const dtype of ['f32', 'bf16'] as const)
    for (const { m, n, k } of SHAPES) {
      for (const threads of THREADS) {
        const name = `M=${m} N=${n} K=${k}, ${dtype}, ${threads} thread${threads > 1 ? 's' : ''}`;
        note(`gemm ${name}`);
        let ours: Ours = { gflops: null, median_ms: null, ...(oursError ? { error: oursError } : {}) };
        if (be) {
          try {
            ours = await measureOurs(be, m, n, k, threads, dtype);
          } catch (e) {
            ours = { gflops: null, median_ms: null, error: e instanceof Error ? e.message : String(e) };
          }
        }
        let peer: Record<string, unknown> | null = null;
        let peerError: string | undefined = peerBin.ok ? undefined : peerBin.reason;
        if (peerBin.ok) {
          const r = runPeer(peerBin.path, [m, n, k, threads, RUNS, dtype].map(String), threadEnv(threads));
          if (r.ok) peer = r.lines[0] ?? null;
          else peerError = r.reason;
        }
        const extra: Record<string, unknown> = { m, n, k, dtype, threads, ours_ms: ours.median_ms };
        const gemm = dtype === 'bf16' ? be?.info?.()['bf16Gemm'] : undefined;
        if (gemm) extra['ours_bf16_gemm'] = gemm;
        if (peer) extra['peer_ms'] = peer['median_ms'];
        if (peer?.['dnnl'])
          extra['peer_detail'] =
            `${String(peer['api'])}, ${dtype === 'bf16' ? `the bf16 matmul primitive` : `the faster of dnnl_sgemm ${String(peer['sgemm_gflops'])} and the matmul primitive ${String(peer['primitive_gflops'])} GFLOP/s`}; ${String(peer['dnnl'])}, ${String(peer['isa'])}`;
        if (BACKEND !== 'native') extra['ours_backend'] = BACKEND;
        if (ours.error) extra['ours_error'] = ours.error;
        if (peerError) extra['peer_error'] = peerError;
        rows.push(
          emit({
            bench: 'gemm',
            case: name,
            ours: ours.gflops,
            peer: typeof peer?.['gflops'] === 'number' ? peer['gflops'] : null,
            peer_name:
              dtype === 'bf16'
                ? 'oneDNN bf16 matmul primitive from C++'
                : 'oneDNN from C++ (the faster of dnnl_sgemm and its matmul primitive)',
            unit: 'GFLOP/s',
            ...extra,
          }),
        );
      }
    }
  return rows;
}
