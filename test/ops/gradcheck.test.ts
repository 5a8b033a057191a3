// Gradient checks (central differences) for every differentiable op, on every available backend:
// js in float64 with tight tolerances, native in float32 with looser ones; each also with its fused
// kernels hidden (the composite fallbacks' backward against their own forward).

import { describe, test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { withCompositeBackends } from '../helpers/backends.js';
import { gradcheck, randData, withStream } from '../helpers/gradcheck.js';

for (const tb of withCompositeBackends()) {
  const r = (shape: number[], seed: number, scale = 1) => randData(tb, shape, seed, scale);
  const positive = (shape: number[], seed: number) => ops.addScalar(ops.abs(r(shape, seed)), 0.5);
  const ids = (values: number[], shape = [values.length]) =>
    tensor(values, { dtype: 'i32', shape, backend: tb.backend });
  const bools = (values: number[], shape: number[]) => tensor(values, { dtype: 'bool', shape, backend: tb.backend });

  describe(`gradients on ${tb.name}`, () => {
    test('unary ops', () => {
      const unary: [string, (x: Tensor) => Tensor, boolean][] = [
        ['neg', ops.neg, false],
        ['exp', ops.exp, false],
        ['log', ops.log, true],
        ['sqrt', ops.sqrt, true],
        ['rsqrt', ops.rsqrt, true],
        ['abs', ops.abs, false],
        ['sin', ops.sin, false],
        ['cos', ops.cos, false],
        ['tanh', ops.tanh, false],
        ['sigmoid', ops.sigmoid, false],
        ['relu', ops.relu, false],
        ['gelu', ops.gelu, false],
        ['geluTanh', ops.geluTanh, false],
        ['silu', ops.silu, false],
        ['square', ops.square, false],
        ['reciprocal', ops.reciprocal, true],
      ];
      for (const [name, f, pos] of unary) {
        // Away from kinks (abs/relu at 0): shift inputs so no element sits near 0.
        const x = pos ? positive([3, 5], 1) : ops.addScalar(r([3, 5], 2, 2), 0.05);
        gradcheck(tb, name, f, [x]);
      }
    });

    test('scalar ops and clamp', () => {
      const x = r([4, 3], 3);
      gradcheck(tb, 'addScalar', (a) => ops.addScalar(a, 0.7), [x]);
      gradcheck(tb, 'mulScalar', (a) => ops.mulScalar(a, -1.3), [x]);
      gradcheck(tb, 'rsubScalar', (a) => ops.rsubScalar(a, 2), [x]);
      gradcheck(tb, 'powScalar', (a) => ops.powScalar(a, 3), [x]);
      gradcheck(tb, 'powScalar fractional', (a) => ops.powScalar(a, 1.5), [positive([4, 3], 4)]);
      gradcheck(tb, 'clamp', (a) => ops.clamp(a, -0.5, 0.45), [x]);
    });

    test('binary ops with broadcasting', () => {
      const a = r([2, 3, 4], 5);
      const b = r([3, 1], 6);
      gradcheck(tb, 'add', ops.add, [a, b]);
      gradcheck(tb, 'sub', ops.sub, [a, b]);
      gradcheck(tb, 'mul', ops.mul, [a, b]);
      gradcheck(tb, 'div', ops.div, [a, positive([4], 7)]);
      gradcheck(tb, 'pow', ops.pow, [positive([2, 3], 8), r([3], 9)]);
      gradcheck(tb, 'maximum', ops.maximum, [a, r([4], 10)]);
      gradcheck(tb, 'minimum', ops.minimum, [r([1, 4], 11), a]);
      gradcheck(tb, 'same input twice', (x) => ops.mul(x, x), [r([5], 12)]);
    });

    test('where and maskedFill', () => {
      const cond = bools([1, 0, 0, 1, 1, 0], [2, 3]);
      gradcheck(tb, 'where', (a, b) => ops.where(cond, a, b), [r([2, 3], 13), r([3], 14)]);
      gradcheck(tb, 'maskedFill', (a) => ops.maskedFill(a, cond, -3), [r([4, 2, 3], 15)]);
    });

    test('movement ops', () => {
      const x = r([2, 3, 4], 16);
      gradcheck(tb, 'reshape', (a) => ops.reshape(a, [4, -1]), [x]);
      gradcheck(tb, 'reshape of a transposed view', (a) => ops.reshape(ops.transpose(a, 0, 2), [-1]), [x]);
      gradcheck(tb, 'permute', (a) => ops.mul(ops.permute(a, [2, 0, 1]), r([4, 2, 3], 17)), [x]);
      gradcheck(tb, 'expand', (a) => ops.mul(ops.expand(a, [2, 3, 4]), r([2, 3, 4], 18)), [r([3, 1], 19)]);
      gradcheck(tb, 'slice with step', (a) => ops.slice(a, 2, 1, 4, 2), [x]);
      gradcheck(tb, 'negative slice', (a) => ops.slice(a, 1, -2), [x]);
      gradcheck(tb, 'concat', (a, b) => ops.concat([a, b, a], 1), [x, r([2, 1, 4], 20)]);
      gradcheck(tb, 'split', (a) => ops.mul(ops.split(a, [1, 3], 2)[1]!, r([2, 3, 3], 21)), [x]);
      gradcheck(tb, 'squeeze/unsqueeze', (a) => ops.squeeze(ops.unsqueeze(a, 1), 1), [x]);
      gradcheck(tb, 'contiguous', (a) => ops.contiguous(ops.transpose(a)), [x]);
      gradcheck(tb, 'gather', (a) => ops.gather(a, 1, ids([0, 2, 2, 1, 0, 0, 1, 2], [2, 4, 1])), [r([2, 3, 1], 22)]);
    });

    test('reductions', () => {
      const x = r([3, 4, 5], 23);
      gradcheck(tb, 'sum all', (a) => ops.sum(a), [x]);
      gradcheck(tb, 'sum axes', (a) => ops.sum(a, [0, 2]), [x]);
      gradcheck(tb, 'sum keepdim', (a) => ops.sum(a, -1, { keepdim: true }), [x]);
      gradcheck(tb, 'mean', (a) => ops.mean(a, 1), [x]);
      // Distinct values 0.1 apart, so a finite-difference step never changes which element is extreme.
      const spread = tensor(
        Array.from({ length: 60 }, (_, i) => ((i * 37) % 60) / 10 - 3),
        { shape: [3, 4, 5], dtype: tb.dtype, backend: tb.backend },
      );
      gradcheck(tb, 'amax', (a) => ops.amax(a, 2), [spread]);
      gradcheck(tb, 'amin', (a) => ops.amin(a, [0, 1]), [spread]);
    });

    test('matmul and linear', () => {
      gradcheck(tb, 'matmul 2d', ops.matmul, [r([3, 5], 24), r([5, 4], 25)]);
      gradcheck(tb, 'matmul batched broadcast', ops.matmul, [r([2, 1, 3, 5], 26), r([3, 5, 2], 27)]);
      gradcheck(tb, 'matmul transposed operands', (a, b) => ops.matmul(ops.transpose(a), ops.transpose(b)), [
        r([5, 3], 28),
        r([4, 5], 29),
      ]);
      gradcheck(tb, 'matmul vector', ops.matmul, [r([5], 30), r([2, 5, 3], 31)]);
      gradcheck(tb, 'linear', ops.linear, [r([2, 3, 5], 32), r([4, 5], 33), r([4], 34)]);
      gradcheck(tb, 'linear without bias', (x, w) => ops.linear(x, w), [r([7, 5], 35), r([3, 5], 36)]);
      gradcheck(tb, 'linear frozen weight', ops.linear, [r([2, 5], 37), r([4, 5], 38), r([4], 39)], { skip: [1] });
      gradcheck(tb, 'linear on a strided input', (x, w) => ops.linear(ops.transpose(x), w), [
        r([5, 6], 40),
        r([3, 5], 41),
      ]);
    });

    test('softmax and logSoftmax', () => {
      const x = r([3, 7], 42, 3);
      gradcheck(tb, 'softmax', (a) => ops.softmax(a), [x]);
      gradcheck(tb, 'logSoftmax', (a) => ops.logSoftmax(a), [x]);
      gradcheck(tb, 'softmax over axis 0', (a) => ops.softmax(a, 0), [x]);
    });

    test('layerNorm and rmsNorm', () => {
      const x = r([2, 3, 6], 43, 2);
      gradcheck(tb, 'layerNorm', (a, w, b) => ops.layerNorm(a, w, b, 1e-5), [x, r([6], 44), r([6], 45)]);
      gradcheck(tb, 'layerNorm no affine', (a) => ops.layerNorm(a, null, null), [x]);
      gradcheck(tb, 'rmsNorm', (a, w) => ops.rmsNorm(a, w, 1e-6), [x, r([6], 46)]);
      gradcheck(tb, 'rmsNorm no weight', (a) => ops.rmsNorm(a, null), [x]);
    });

    test('embedding', () => {
      gradcheck(tb, 'embedding (repeated ids)', (w) => ops.embedding(ids([3, 0, 3, 1, 4, 3], [2, 3]), w), [
        r([5, 4], 47),
      ]);
    });

    test('attention', () => {
      const q = r([2, 3, 4, 6], 48);
      const k = r([2, 5, 2, 6], 49);
      const v = r([2, 5, 2, 6], 50);
      const mask = bools([1, 1, 1, 0, 1, 0, 1, 1, 1, 1], [2, 5]);
      gradcheck(tb, 'attention GQA', (a, b, c) => ops.attention(a, b, c), [q, k, v]);
      gradcheck(tb, 'attention causal Tq<Tk', (a, b, c) => ops.attention(a, b, c, { causal: true }), [q, k, v]);
      gradcheck(
        tb,
        'attention window+mask',
        (a, b, c) => ops.attention(a, b, c, { causal: true, window: 2, keyMask: mask }),
        [q, k, v],
      );
      // q/k/v as strided views of one fused projection, as GPT-2's c_attn produces them.
      const qkv = r([2, 4, 3 * 2 * 3], 51);
      gradcheck(
        tb,
        'attention on fused qkv views',
        (x) => {
          const [qq, kk, vv] = ops.split(ops.reshape(x, [2, 4, 3, 2, 3]), [1, 1, 1], 2).map((t) => ops.squeeze(t, 2));
          return ops.attention(qq!, kk!, vv!, { causal: true, scale: 0.3 });
        },
        [qkv],
      );
    });

    test('crossEntropy', () => {
      const logits = r([5, 7], 52, 2);
      const t = ids([1, 6, -100, 0, 3]);
      gradcheck(tb, 'crossEntropy mean', (x) => ops.crossEntropy(x, t), [logits]);
      gradcheck(
        tb,
        'crossEntropy smoothing sum',
        (x) => ops.crossEntropy(x, t, { labelSmoothing: 0.1, reduction: 'sum' }),
        [logits],
      );
      gradcheck(
        tb,
        'crossEntropy none 3d',
        (x) => ops.crossEntropy(x, ids([1, 2, 3, 0, 5, 6], [2, 3]), { reduction: 'none' }),
        [r([2, 3, 7], 53)],
      );
    });

    test('rope', () => {
      const cos = r([1, 3, 2], 54);
      const sin = r([1, 3, 2], 55);
      gradcheck(tb, 'rope', (x) => ops.rope(x, cos, sin), [r([2, 3, 2, 4], 56)]);
    });

    test('dropout', () => {
      // The same seed is replayed for every evaluation, so the function is deterministic.
      gradcheck(
        tb,
        'dropout',
        (x) => {
          const state = { seed: 5, offset: 0 };
          return withStream(state, () => ops.dropout(x, 0.4));
        },
        [r([6, 5], 57)],
      );
    });

    test('patchEmbed', () => {
      gradcheck(
        tb,
        'patchEmbed',
        (x, w, b) => ops.patchEmbed(x, w, b),
        [r([2, 3, 4, 6], 58), r([5, 3, 2, 2], 59), r([5], 60)],
        { maxPoints: 24 },
      );
    });
  });
}
