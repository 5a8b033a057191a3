// What is particular to the native addon, beyond the conformance suite (conformance-native.test.ts):
// its caching allocator and statistics, finalizers that free dropped handles, its thread pool, and the
// exact wording of its errors.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { BackendBuffer, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { type NativeBackend, loadNativeBackend } from '../../src/backends/native/index.js';
import { type DType, type HostArray, f32ToBf16, f32ToF16 } from '../../src/backends/dtype.js';
import { nativeSkip } from '../helpers/backends.js';
import { contiguous, rng } from './conformance/harness.js';

const skip = nativeSkip();
const native: NativeBackend | null = skip ? null : loadNativeBackend();
const js = new JsBackend();

/** A test that skips (with the load error as reason) when the addon is not built. */
function ntest(name: string, fn: (nb: NativeBackend) => void | Promise<void>): void {
  test(name, { skip }, async () => {
    await fn(native!);
  });
}

const rand = rng(1234);
function randf(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 2 * rand() - 1);
}
function randi(n: number, lo: number, hi: number): Int32Array {
  return Int32Array.from({ length: n }, () => lo + Math.floor((hi - lo) * rand()));
}
function randb(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
}

ntest('buffers: upload/download round trip for every dtype, caching and stats', (nb) => {
  const before = nb.memory();
  const cases: [DType, HostArray][] = [
    ['f32', randf(37)],
    ['f16', Uint16Array.from(randf(37), (x) => f32ToF16(x))],
    ['bf16', Uint16Array.from(randf(37), (x) => f32ToBf16(x))],
    ['i32', randi(37, -1000, 1000)],
    ['i64', BigInt64Array.from(randi(37, -1000, 1000), (x) => BigInt(x) * 12345678901n)],
    ['bool', randb(37)],
  ];
  for (const [dtype, data] of cases) {
    const b = nb.alloc(dtype, data.length);
    assert.equal(b.byteLength, data.byteLength);
    nb.upload(b, dtype, 0, data);
    const back = nb.download({ buf: b, dtype, offset: 0, shape: [data.length], strides: [1] });
    assert.deepEqual(back, data, dtype);
    const sliced = nb.download({ buf: b, dtype, offset: 3, shape: [4, 2], strides: [8, 3] });
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) assert.equal(sliced[i * 2 + j], data[3 + i * 8 + j * 3]);
    nb.free(b);
    nb.free(b); // idempotent
  }
  const after = nb.memory();
  assert.equal(after.allocated, before.allocated);
  assert.ok(after.cached > 0, 'freed blocks are cached');
  const again = nb.alloc('f32', 37); // reuses a cached block of the same size
  assert.ok(nb.memory().cached < after.cached);
  nb.free(again);
  nb.emptyCache();
  assert.equal(nb.memory().cached, 0);
  assert.ok(nb.dtypes.includes('bf16') && !nb.dtypes.includes('f64'));
  assert.equal(nb.name, 'native');
  assert.equal(nb.device, 'cpu');
  nb.sync();
});

ntest('buffers: handles dropped without free are released by the garbage collector', async (nb) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  nb.emptyCache();
  const start = nb.memory().allocated;
  (() => {
    for (let i = 0; i < 64; i++) nb.alloc('f32', 1 << 16);
  })();
  assert.equal(nb.memory().allocated, start + 64 * 4 * (1 << 16));
  for (let i = 0; i < 10 && nb.memory().allocated > start; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(nb.memory().allocated, start);
  nb.emptyCache();
});

ntest('threads: VERA_NUM_THREADS sets the default', () => {
  const url = new URL('../../src/backends/native/index.js', import.meta.url).href;
  const script = `import('${url}').then((m) => console.log(m.loadNativeBackend().getThreads()))`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, VERA_NUM_THREADS: '3' },
    encoding: 'utf8',
  });
  assert.equal(out.trim(), '3');
});

ntest('threads: getThreads / setThreads', (nb) => {
  const n = nb.getThreads();
  assert.ok(n >= 1);
  nb.setThreads(1);
  assert.equal(nb.getThreads(), 1);
  nb.setThreads(n);
  assert.equal(nb.getThreads(), n);
  assert.throws(() => nb.setThreads(0), /\[native setThreads\]/);
});

ntest('errors: bad ids, shapes, dtypes, views and handles throw tagged Errors', (nb) => {
  const w = nb.alloc('f32', 50257 * 2);
  const ids = nb.alloc('i32', 5);
  nb.upload(ids, 'i32', 0, Int32Array.from([0, 1, 2, 50257, 4]));
  const out = nb.alloc('f32', 10);
  const V = (buf: BackendBuffer, dtype: DType, shape: number[], strides = contiguous(shape), offset = 0): View => ({
    buf,
    dtype,
    offset,
    shape,
    strides,
  });
  assert.throws(
    () => nb.embedding(V(out, 'f32', [5, 2]), V(w, 'f32', [50257, 2]), V(ids, 'i32', [5])),
    /^Error: \[native embedding\] id 50257 at position 3 is out of range for a table of 50257 rows$/,
  );
  assert.throws(
    () => nb.embeddingBackward(V(w, 'f32', [50257, 2]), V(out, 'f32', [5, 2]), V(ids, 'i32', [5])),
    /\[native embeddingBackward\] id 50257/,
  );
  // matmul inner dims disagree
  const a = nb.alloc('f32', 12);
  assert.throws(
    () => nb.matmul(V(out, 'f32', [1, 2, 2]), V(a, 'f32', [1, 2, 3]), V(a, 'f32', [1, 4, 2]), false),
    /\[native matmul\] shapes/,
  );
  // views outside their buffer, negative strides, wrong dtype, foreign buffers
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [10]), V(a, 'f32', [10], [1], 3)),
    /\[native unary\] input .* exceeds its buffer/,
  );
  assert.throws(() => nb.unary('exp', V(out, 'f32', [4]), V(a, 'f32', [4], [4])), /exceeds its buffer/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(a, 'f32', [3], [-1], 5)), /negative stride/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(ids, 'i32', [3])), /\[native exp\] input must be f32/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(a, 'i32', [3])), /i32 view of a f32 buffer/);
  assert.throws(() => nb.unary('nope' as 'exp', V(out, 'f32', [3]), V(a, 'f32', [3])), /\[native unary\] Unknown op/);
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [3]), V(js.alloc('f32', 3), 'f32', [3])),
    /not a native backend buffer/,
  );
  assert.throws(() => nb.binary('add', V(out, 'f32', [3]), V(a, 'f32', [3]), V(a, 'f32', [4])), /\[native add\]/);
  assert.throws(() => nb.alloc('f64', 3), /f64/);
  assert.throws(() => nb.alloc('f32', -1), /\[native alloc\]/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Float32Array(13)), /\[native upload\]/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Int32Array(3)), /\[native upload\]/);
  // indices out of range
  const idx = nb.alloc('i32', 2);
  nb.upload(idx, 'i32', 0, Int32Array.from([1, 9]));
  assert.throws(
    () => nb.gather(V(out, 'f32', [2]), V(a, 'f32', [3]), V(idx, 'i32', [2]), 0),
    /\[native gather\] index 9/,
  );
  assert.throws(
    () => nb.scatterAdd(V(a, 'f32', [3]), V(idx, 'i32', [2]), V(out, 'f32', [2]), 0),
    /\[native scatterAdd\] index 9/,
  );
  assert.throws(
    () =>
      nb.crossEntropy(V(out, 'f32', [2]), V(out, 'f32', [2], [1], 2), V(a, 'f32', [2, 3]), V(idx, 'i32', [2]), {
        ignoreIndex: -100,
        labelSmoothing: 0,
      }),
    /\[native crossEntropy\] target 9 at row 1 is out of range for 3 classes/,
  );
  assert.throws(() => nb.topk(V(out, 'f32', [1, 4]), V(idx, 'i32', [1, 4]), V(a, 'f32', [1, 3]), 4), /\[native topk\]/);
  assert.throws(() => nb.dropout(V(out, 'f32', [3]), V(a, 'f32', [3]), 1, 0, 0), /\[native dropout\] p = 1/);
  // use after free: the handle throws, never crashes
  nb.free(a);
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [3]), V(a, 'f32', [3])),
    /\[native unary\] input buffer was used after free/,
  );
  assert.throws(() => nb.download(V(a, 'f32', [3])), /used after free/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Float32Array(3)), /used after free/);
  nb.free(a);
  for (const b of [w, ids, out, idx]) nb.free(b);
});
