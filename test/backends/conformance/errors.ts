// Error paths: bad ids, shapes, dtypes, views and handles must throw an Error that names the kernel
// (and the offending value where there is one), never crash or write garbage. The wording beyond
// that is each backend's own; test/backends/native.test.ts pins the native addon's messages.

import assert from 'node:assert/strict';
import type { Backend, BackendBuffer, View } from '../../../src/backends/backend.js';
import type { DType } from '../../../src/backends/dtype.js';
import type { Ctx } from './harness.js';
import { contiguous } from './harness.js';

const V = (buf: BackendBuffer, dtype: DType, shape: number[], strides = contiguous(shape), offset = 0): View => ({
  buf,
  dtype,
  offset,
  shape,
  strides,
});

/** Asserts fn throws an Error whose message matches every pattern. */
function throwsWith(fn: () => void, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** Runs fn, then waits for the backend: a device backend reports a data-dependent error there. */
function synced(be: Backend, fn: () => void): void {
  fn();
  be.sync();
}

export function errorTests(ctx: Ctx): void {
  const F = ctx.float;

  ctx.test(
    ['memory', 'embedding', 'embeddingBackward', 'matmul', 'unary', 'binary', 'gather', 'scatterAdd', 'topk'],
    'errors: bad ids, shapes, dtypes, views and handles throw Errors naming the kernel',
    () => {
      const nb = ctx.subject;
      const w = nb.alloc(F, 50257 * 2);
      const ids = nb.alloc('i32', 5);
      nb.upload(ids, 'i32', 0, Int32Array.from([0, 1, 2, 50257, 4]));
      const out = nb.alloc(F, 10);
      // Data-dependent errors are thrown by the call (CPU backends) or by the next sync (a device
      // backend, see backend.ts "Data-dependent errors"): each call here is followed by one.
      throwsWith(
        () => synced(nb, () => nb.embedding(V(out, F, [5, 2]), V(w, F, [50257, 2]), V(ids, 'i32', [5]))),
        /embedding/,
        /50257/,
      );
      throwsWith(
        () => synced(nb, () => nb.embeddingBackward(V(w, F, [50257, 2]), V(out, F, [5, 2]), V(ids, 'i32', [5]))),
        /embeddingBackward/,
        /50257/,
      );
      const a = nb.alloc(F, 12);
      throwsWith(() => nb.matmul(V(out, F, [1, 2, 2]), V(a, F, [1, 2, 3]), V(a, F, [1, 4, 2]), false), /matmul/);
      // views outside their buffer, negative strides, wrong dtypes, foreign buffers
      throwsWith(() => nb.unary('exp', V(out, F, [10]), V(a, F, [10], [1], 3)), /exceeds its buffer/);
      throwsWith(() => nb.unary('exp', V(out, F, [4]), V(a, F, [4], [4])), /exceeds its buffer/);
      throwsWith(() => nb.unary('exp', V(out, F, [3]), V(a, F, [3], [-1], 5)), /negative stride/i);
      throwsWith(() => nb.unary('exp', V(out, F, [3]), V(ids, 'i32', [3])), /exp/);
      throwsWith(() => nb.unary('exp', V(out, F, [3]), V(a, 'i32', [3])), /i32/, new RegExp(F));
      throwsWith(() => nb.unary('nope' as 'exp', V(out, F, [3]), V(a, F, [3])), /Unknown op/);
      throwsWith(() => nb.unary('exp', V(out, F, [3]), V({ byteLength: 12 }, F, [3])), /buffer/);
      throwsWith(() => nb.binary('add', V(out, F, [3]), V(a, F, [3]), V(a, F, [4])), /add/);
      throwsWith(() => nb.alloc(F, -1), /alloc/);
      throwsWith(() => nb.upload(a, F, 0, F === 'f64' ? new Float64Array(13) : new Float32Array(13)), /upload/);
      throwsWith(() => nb.upload(a, F, 0, new Int32Array(3)), /upload/);
      // indices out of range
      const idx = nb.alloc('i32', 2);
      nb.upload(idx, 'i32', 0, Int32Array.from([1, 9]));
      throwsWith(() => synced(nb, () => nb.gather(V(out, F, [2]), V(a, F, [3]), V(idx, 'i32', [2]), 0)), /gather/, /9/);
      throwsWith(
        () => synced(nb, () => nb.scatterAdd(V(a, F, [3]), V(idx, 'i32', [2]), V(out, F, [2]), 0)),
        /scatterAdd/,
        /9/,
      );
      throwsWith(() => nb.topk(V(out, F, [1, 4]), V(idx, 'i32', [1, 4]), V(a, F, [1, 3]), 4), /topk/);
      // use after free: the handle throws, never crashes
      nb.free(a);
      throwsWith(() => nb.unary('exp', V(out, F, [3]), V(a, F, [3])), /after free/);
      throwsWith(() => nb.download(V(a, F, [3])), /after free/);
      throwsWith(() => nb.upload(a, F, 0, F === 'f64' ? new Float64Array(3) : new Float32Array(3)), /after free/);
      nb.free(a);
      for (const b of [w, ids, out, idx]) nb.free(b);
    },
  );

  ctx.test(
    ['crossEntropy', 'crossEntropyBackward', 'dropout', 'softmax'],
    'errors: fused kernels (and their composites) reject bad targets, rates and views',
    () => {
      const nb = ctx.subject;
      const k = ctx.k(nb);
      const out = nb.alloc(F, 10);
      const a = nb.alloc(F, 12);
      const idx = nb.alloc('i32', 2);
      nb.upload(idx, 'i32', 0, Int32Array.from([1, 9]));
      const opts = { ignoreIndex: -100, labelSmoothing: 0 };
      throwsWith(
        () =>
          synced(nb, () =>
            k.crossEntropy(V(out, F, [2]), V(out, F, [2], [1], 2), V(a, F, [2, 3]), V(idx, 'i32', [2]), opts),
          ),
        /crossEntropy|gather/, // a device reports it at the sync, naming the primitive of a composite that met it

        /9/,
      );
      throwsWith(
        () =>
          synced(nb, () =>
            k.crossEntropyBackward(
              V(a, F, [2, 3]),
              V(out, F, [2]),
              V(a, F, [2, 3], [3, 1], 6),
              V(out, F, [2], [1], 2),
              V(idx, 'i32', [2]),
              opts,
            ),
          ),
        /crossEntropyBackward|scatterAdd/,
        /9/,
      );
      throwsWith(() => k.dropout(V(out, F, [3]), V(a, F, [3]), 1, 0, 0), /dropout/, /p = 1/);
      throwsWith(() => k.softmax(V(out, F, [2, 3]), V(a, F, [2, 3], [1, 2]), false), /softmax/, /contiguous/);
      for (const b of [out, a, idx]) nb.free(b);
    },
  );
}
