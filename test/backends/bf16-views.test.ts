// The bf16-view fallback (src/backends/bf16-views.ts): a kernel given bf16 views computes on widened
// f32 copies and rounds each bf16 output once; accumulating outputs are read first; broadcast inputs
// stay compact; scratch is freed, also when the kernel throws; kernels a backend lists as its own are
// left alone; VERA_ACTIVATIONS is parsed with an error naming the value.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, View } from '../../src/backends/backend.js';
import { activationsFromEnv, bf16Fallback, withBf16Views } from '../../src/backends/bf16-views.js';
import { bf16ToF32, f32ToBf16 } from '../../src/backends/dtype.js';
import { JsBackend } from '../../src/backends/js/index.js';

function view(b: Backend, dtype: 'f32' | 'bf16', data: number[], shape: number[], strides?: number[]): View {
  const buf = b.alloc(dtype, data.length);
  b.upload(buf, dtype, 0, dtype === 'f32' ? Float32Array.from(data) : Uint16Array.from(data, (x) => f32ToBf16(x)));
  const st = strides ?? shape.map((_, i) => shape.slice(i + 1).reduce((a, c) => a * c, 1));
  return { buf, dtype, offset: 0, shape, strides: st };
}

const widen = (bits: ArrayLike<number>): number[] => Array.from(bits, (x) => bf16ToF32(x));

describe('bf16 views through the widening fallback (js)', () => {
  test('binary over bf16 and broadcast f32 inputs: f32 math, one rounding per element', () => {
    const b = new JsBackend();
    const a = view(b, 'bf16', [1.5, -2.25, 3.1, 1e-3, 7, 8], [2, 3]);
    const w = view(b, 'f32', [0.1, 0.2, 0.3], [2, 3], [0, 1]); // a [3] vector read as [2, 3]
    const out = view(b, 'bf16', [0, 0, 0, 0, 0, 0], [2, 3]);
    const before = b.memory().allocated;
    b.binary('mul', out, a, w);
    assert.equal(b.memory().allocated, before, 'scratch freed');
    const av = widen(b.download(a) as Uint16Array);
    const want = av.map((x, i) => f32ToBf16(Math.fround(x * Math.fround([0.1, 0.2, 0.3][i % 3]!))));
    assert.deepEqual(Array.from(b.download(out) as Uint16Array), want);
  });

  test('a broadcast bf16 input is widened compactly (its own elements, not the broadcast shape)', () => {
    const b = new JsBackend();
    const seen: number[] = [];
    const alloc = b.alloc.bind(b);
    b.alloc = (dtype, n) => (seen.push(n), alloc(dtype, n));
    const row = view(b, 'bf16', [1, 2, 3], [4, 3], [0, 1]);
    const out = view(b, 'f32', new Array(12).fill(0), [4, 3]);
    seen.length = 0;
    b.unary('neg', out, row);
    assert.deepEqual(seen, [3]);
    assert.deepEqual(Array.from(b.download(out) as Float32Array), [-1, -2, -3, -1, -2, -3, -1, -2, -3, -1, -2, -3]);
  });

  test('an accumulated bf16 output is read widened, then rounded once', () => {
    const b = new JsBackend();
    const a = view(b, 'f32', [1, 2], [1, 1, 2]);
    const c = view(b, 'f32', [3, 4], [1, 2, 1]);
    const out = view(b, 'bf16', [100.5], [1, 1, 1]);
    b.matmul(out, a, c, true);
    assert.deepEqual(Array.from(b.download(out) as Uint16Array), [f32ToBf16(100.5 + 11)]);
  });

  test("scratch is freed when the kernel throws; kernels listed as the backend's own are untouched", () => {
    const b = new JsBackend();
    const bad = bf16Fallback(b, 'unary', (..._args: unknown[]) => {
      throw new Error('boom');
    });
    const a = view(b, 'bf16', [1, 2], [2]);
    const out = view(b, 'bf16', [0, 0], [2]);
    const before = b.memory().allocated;
    assert.throws(() => bad('neg', out, a), /boom/);
    assert.equal(b.memory().allocated, before);

    const calls: string[] = [];
    const own = {
      ...Object.fromEntries(['unary', 'binary'].map((k) => [k, (..._: unknown[]) => void calls.push(k)])),
      bf16Kernels: new Set(['unary']),
    } as unknown as Backend;
    withBf16Views(own);
    (own.unary as (...a: unknown[]) => void)('neg', out, a); // own: no widening, so no alloc needed
    assert.deepEqual(calls, ['unary']);
    assert.throws(() => (own.binary as (...a: unknown[]) => void)('add', out, a, a), /alloc/); // wrapped: widens
  });

  test('VERA_ACTIVATIONS: bf16, f32, unset (the default), or an error naming the value', () => {
    const old = process.env['VERA_ACTIVATIONS'];
    try {
      delete process.env['VERA_ACTIVATIONS'];
      assert.equal(activationsFromEnv('cuda', 'bf16'), 'bf16');
      assert.equal(activationsFromEnv('native', undefined), undefined);
      process.env['VERA_ACTIVATIONS'] = 'f32';
      assert.equal(activationsFromEnv('cuda', 'bf16'), undefined);
      process.env['VERA_ACTIVATIONS'] = 'bf16';
      assert.equal(activationsFromEnv('native', undefined), 'bf16');
      process.env['VERA_ACTIVATIONS'] = 'fp8';
      assert.throws(
        () => activationsFromEnv('cuda', 'bf16'),
        /\[cuda\] VERA_ACTIVATIONS must be "bf16" or "f32", got "fp8"/,
      );
    } finally {
      if (old === undefined) delete process.env['VERA_ACTIVATIONS'];
      else process.env['VERA_ACTIVATIONS'] = old;
    }
    assert.throws(() => new JsBackend({ activationDType: 'f16' as 'bf16' }), /activationDType must be 'bf16'/);
  });
});
