// Buffers: upload/download round trips for every dtype the backend holds, strided downloads, free
// (idempotent) and the live-byte count.

import assert from 'node:assert/strict';
import type { DType, HostArray } from '../../../src/backends/dtype.js';
import { f32ToBf16, f32ToF16 } from '../../../src/backends/dtype.js';
import type { Ctx } from './harness.js';

function hostData(ctx: Ctx, dtype: DType, n: number): HostArray {
  const f = ctx.randf(n);
  switch (dtype) {
    case 'f32':
      return f;
    case 'f64':
      return Float64Array.from(f, (x) => x / 3);
    case 'f16':
      return Uint16Array.from(f, (x) => f32ToF16(x));
    case 'bf16':
      return Uint16Array.from(f, (x) => f32ToBf16(x));
    case 'i32':
      return ctx.randi(n, -1000, 1000);
    case 'i64':
      return BigInt64Array.from(ctx.randi(n, -1000, 1000), (x) => BigInt(x) * 12345678901n);
    default:
      return ctx.randb(n);
  }
}

export function memoryTests(ctx: Ctx): void {
  ctx.test(['memory'], 'buffers: upload/download round trip for every dtype, strided downloads, free', () => {
    const be = ctx.subject;
    const before = be.memory().allocated;
    for (const dtype of be.dtypes) {
      const data = hostData(ctx, dtype, 37);
      const b = be.alloc(dtype, data.length);
      assert.equal(b.byteLength, data.byteLength, dtype);
      be.upload(b, dtype, 0, data);
      assert.deepEqual(be.download({ buf: b, dtype, offset: 0, shape: [data.length], strides: [1] }), data, dtype);
      const sliced = be.download({ buf: b, dtype, offset: 3, shape: [4, 2], strides: [8, 3] });
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 2; j++) assert.equal(sliced[i * 2 + j], data[3 + i * 8 + j * 3], `${dtype} strided`);
      const bcast = be.download({ buf: b, dtype, offset: 5, shape: [3, 2], strides: [0, 1] });
      for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) assert.equal(bcast[i * 2 + j], data[5 + j], dtype);
      // A partial upload at an offset leaves the rest alone.
      const part = hostData(ctx, dtype, 4);
      be.upload(b, dtype, 30, part);
      const back = be.download({ buf: b, dtype, offset: 28, shape: [9], strides: [1] });
      assert.deepEqual(Array.from(back.slice(2, 6) as ArrayLike<unknown>), Array.from(part as ArrayLike<unknown>));
      assert.equal(back[0], data[28], `${dtype} untouched before the upload`);
      be.free(b);
      be.free(b); // idempotent
    }
    assert.equal(be.memory().allocated, before, 'live bytes return to where they were');
    be.sync();
    be.emptyCache();
  });

  ctx.test(['memory'], 'peak memory: counts a buffer freed since, restarts at resetPeakMemory', (t) => {
    const be = ctx.subject;
    if (!be.resetPeakMemory || be.memory().peak === undefined) {
      t.skip(`${ctx.name} does not report peak memory (optional)`);
      return;
    }
    be.resetPeakMemory();
    const start = be.memory().peak!;
    const bytes = 64 << 20;
    const b = be.alloc('f32', bytes / 4);
    be.fill({ buf: b, dtype: 'f32', offset: 0, shape: [bytes / 4], strides: [1] }, 1);
    be.free(b);
    be.sync();
    const high = be.memory().peak!;
    assert.ok(high >= start + bytes, `peak ${high} counts the ${bytes}-byte buffer (it was ${start})`);
    be.resetPeakMemory();
    assert.ok(be.memory().peak! <= high - bytes, 'after resetPeakMemory the freed buffer no longer counts');
  });
}
