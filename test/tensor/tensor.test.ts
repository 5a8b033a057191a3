// The tensor layer: dtype conversions, shape/stride rules (torch's view semantics), creation, views
// sharing storage, reference-counted disposal and scopes, and torch's CPU generator.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { JsBackend } from '../../src/backends/js/index.js';
import * as ops from '../../src/ops/index.js';
import { arange, full, rand, tensor, zeros } from '../../src/tensor/creation.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/backends/dtype.js';
import { ShapeError } from '../../src/tensor/errors.js';
import { Generator } from '../../src/tensor/random.js';
import { keep, scope, scopeDepth } from '../../src/tensor/scope.js';
import { broadcastShapes, contiguousStrides, isContiguous, reshapeStrides } from '../../src/tensor/shape.js';

describe('dtype conversions', () => {
  test('f32ToBf16() rounds to nearest even and keeps NaN/inf', () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(bf16ToF32(f32ToBf16(0.1)), 0.10009765625); // PEFT's bf16 d_initial
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
    assert.equal(bf16ToF32(f32ToBf16(Infinity)), Infinity);
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  });

  test('f32ToF16() matches IEEE half precision, subnormals and overflow included', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds to inf
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie → even (0)
      [0.1, 0x2e66],
    ];
    for (const [x, bits] of cases) assert.equal(f32ToF16(x), bits, `f16(${x})`);
    for (let h = 0; h < 0x7c00; h += 97) assert.equal(f32ToF16(f16ToF32(h)), h, `round trip of 0x${h.toString(16)}`);
  });

  test('cast() moves values between storage dtypes', () => {
    const b = new JsBackend();
    const x = tensor([1.5, -2.25, 3.75e-3, 65504], { backend: b });
    assert.deepEqual(ops.cast(ops.cast(x, 'bf16'), 'f32').toNumbers(), [1.5, -2.25, 0.003753662109375, 65536]);
    assert.deepEqual(
      ops.cast(ops.cast(x, 'f16'), 'f32').toNumbers(),
      [1.5, -2.25, 0.0037498474121094, 65504].map(Math.fround),
    );
    assert.deepEqual(ops.cast(x, 'i32').toNumbers(), [1, -2, 0, 65504]);
    assert.deepEqual(ops.cast(x, 'bool').toNumbers(), [1, 1, 1, 1]);
    assert.deepEqual(ops.cast(tensor([5n, -7n].map(Number), { dtype: 'i64', backend: b }), 'i32').toNumbers(), [5, -7]);
  });
});

describe('shapes and views', () => {
  test('broadcastShapes() follows numpy rules and names the op on failure', () => {
    assert.deepEqual(broadcastShapes('add', [2, 1, 4], [3, 1]), [2, 3, 4]);
    assert.throws(() => broadcastShapes('add', [2, 3], [4]), /\[add\] Shapes \(2, 3\) and \(4\)/);
  });

  test('reshapeStrides() views when torch would and copies when it must', () => {
    assert.deepEqual(reshapeStrides([2, 3, 4], contiguousStrides([2, 3, 4]), [6, -1]).strides, [4, 1]);
    // A transposed [3, 2] matrix cannot be flattened without a copy.
    assert.equal(reshapeStrides([3, 2], [1, 3], [6]).strides, null);
    // Splitting a transposed axis is a view.
    assert.deepEqual(reshapeStrides([4, 3], [1, 4], [2, 2, 3]).strides, [2, 1, 4]);
    assert.throws(() => reshapeStrides([2, 3], [3, 1], [4, -1]), ShapeError);
  });

  test('views share storage and survive the disposal of their base', () => {
    const b = new JsBackend();
    const x = tensor([0, 1, 2, 3, 4, 5], { shape: [2, 3], backend: b });
    const t = ops.transpose(x);
    assert.equal(t.storage, x.storage);
    assert.equal(isContiguous(t.shape, t.strides), false);
    x.dispose();
    assert.deepEqual(t.toNumbers(), [0, 3, 1, 4, 2, 5]);
    t.dispose();
    assert.equal(b.memory().allocated, 0);
  });

  test('slice, expand and concat produce the expected elements', () => {
    const b = new JsBackend();
    const x = arange(12, undefined, 1, { backend: b, dtype: 'f32' });
    const m = ops.reshape(x, [3, 4]);
    assert.deepEqual(ops.slice(m, 1, 1, 4, 2).toNumbers(), [1, 3, 5, 7, 9, 11]);
    assert.deepEqual(ops.expand(ops.slice(m, 0, 2), [2, 1, 4]).toNumbers(), [8, 9, 10, 11, 8, 9, 10, 11]);
    assert.deepEqual(
      ops.concat([ops.slice(m, 0, 0, 1), ops.slice(m, 0, 2)], 0).toNumbers(),
      [0, 1, 2, 3, 8, 9, 10, 11],
    );
  });

  test('tensor() rejects data that does not fill its shape', () => {
    assert.throws(
      () => tensor([1, 2, 3], { shape: [2, 2], backend: new JsBackend() }),
      /\[tensor\] 3 values do not fill shape \(2, 2\)/,
    );
  });
});

describe('scopes', () => {
  test('scope() disposes what it created, keeps results and kept tensors', () => {
    const b = new JsBackend();
    let inner = zeros([1], { backend: b });
    const kept = scope(() => {
      inner = full([2], 1, { backend: b });
      keep(full([3], 2, { backend: b }));
      return { out: [full([4], 3, { backend: b })] };
    });
    assert.equal(inner.disposed, true);
    assert.deepEqual(kept.out[0]!.toNumbers(), [3, 3, 3, 3]);
    assert.equal(scopeDepth(), 0);
    // 1 (zeros) + 3 (kept) + 4 (returned) floats remain.
    assert.equal(b.memory().allocated, (1 + 3 + 4) * 4);
  });

  test('a `using` declaration disposes the tensor at the end of its block', () => {
    const b = new JsBackend();
    {
      using t = full([5], 1, { backend: b });
      assert.equal(t.numel, 5);
    }
    assert.equal(b.memory().allocated, 0);
  });

  test('scope() cleans up when its function throws', () => {
    const b = new JsBackend();
    assert.throws(() =>
      scope(() => {
        full([10], 1, { backend: b });
        throw new Error('boom');
      }),
    );
    assert.equal(b.memory().allocated, 0);
    assert.equal(scopeDepth(), 0);
  });
});

describe('Generator', () => {
  test('reproduces torch.Generator().manual_seed(0)', () => {
    const g = new Generator(0);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => g.nextU32()),
      [2357136044, 2546248239, 3071714933, 3626093760, 2588848963],
    );
  });

  test('uniform() reproduces PEFT VeRA projections bit for bit (seed 0, r 2, in 4, out 3)', () => {
    const g = new Generator(0);
    const bound = (fan: number) => Math.sqrt(3.0) * (Math.SQRT2 / Math.sqrt(fan));
    const a = g.uniform(2 * 4, -bound(4), bound(4));
    const bm = g.uniform(3 * 2, -bound(2), bound(2));
    const hex = (x: Float32Array) => Array.from(new Uint32Array(x.buffer), (u) => u.toString(16).padStart(8, '0'));
    assert.deepEqual(hex(a), [
      'bc163b71',
      '3f283195',
      'bf8106d0',
      'bf66be0f',
      'bef184bd',
      '3ea8273d',
      'bcc6c9af',
      '3f78992e',
    ]);
    assert.deepEqual(hex(bm), ['be1d65f1', '3eeaa93b', 'bf0600b7', 'beae50ef', 'bfd3cd9b', 'bf92d461']);
  });

  test('uniform() matches torch hashes, FMA and non-FMA, and seeds mod 2³²', () => {
    const sha = (x: Float32Array) => createHash('sha256').update(new Uint8Array(x.buffer)).digest('hex').slice(0, 16);
    const proj = (seed: bigint | number, r: number, maxIn: number, maxOut: number, fma = true) => {
      const g = new Generator(seed);
      const bound = (fan: number) => Math.sqrt(3.0) * (Math.SQRT2 / Math.sqrt(fan));
      return [
        sha(g.uniform(r * maxIn, -bound(maxIn), bound(maxIn), fma)),
        sha(g.uniform(maxOut * r, -bound(r), bound(r), fma)),
      ];
    };
    assert.deepEqual(proj(0, 4, 30, 30), ['0996843d4bed8412', '8bcc5397ef2253f9']);
    assert.deepEqual(proj(123, 16, 768, 3072), ['ab3991c8fc3ff13f', '6c3dd85b58ff6d5c']);
    assert.deepEqual(proj(2n ** 32n + 7n, 8, 64, 64), ['43283fea0e27b150', 'f38ab99fbf547f86']);
    assert.equal(proj(0, 256, 4096, 4096, false)[0], 'c0b45f682454c38d');
  });

  test('rand() draws from the default generator, reproducibly', () => {
    const b = new JsBackend();
    const x = rand([4], { generator: new Generator(7), backend: b }).toNumbers();
    const y = rand([4], { generator: new Generator(7), backend: b }).toNumbers();
    assert.deepEqual(x, y);
    assert.ok(x.every((v) => v >= 0 && v < 1));
  });
});
