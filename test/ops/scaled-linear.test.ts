// ops.scaledLinear: (x·Wᵀ) ⊙ s either by scaling the output or by folding s into W, chosen from the
// backend's GEMM-to-bandwidth balance. Both formulations are gradient-checked, agree with each other
// (f32: to rounding; bf16 weights: within bf16 rounding of the folded weight), and the choice follows
// the cost model (a GPU-like balance folds a training-sized product, a CPU-like one never does, and a
// decode step's single row is never folded).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backends/backend.js';
import * as ops from '../../src/ops/index.js';
import { foldsScale } from '../../src/ops/scaled-linear.js';
import { tensor } from '../../src/tensor/creation.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { type TestBackend, testBackends } from '../helpers/backends.js';
import { gradcheck, randData } from '../helpers/gradcheck.js';

/** `b` reporting another GEMM balance (every method still runs on `b`). */
function withBalance(b: Backend, balance: number): Backend {
  return new Proxy(b, {
    get(target, key) {
      if (key === 'gemmFlopsPerByte') return balance;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const FOLD = 1e12; // every trained product folds
const SCALE = 1e-12; // none does

for (const tb of testBackends()) {
  describe(`scaleColumns on ${tb.name}`, () => {
    test('gradients of a and s (s summed over every leading axis)', () => {
      gradcheck(tb, 'scaleColumns', (a, v) => ops.scaleColumns(a, v), [
        randData(tb, [2, 3, 7], 31),
        randData(tb, [7], 32),
      ]);
    });

    test('the values and gradients of mul(a, s)', () => {
      const run = (f: (a: Tensor, v: Tensor) => Tensor): number[][] =>
        scope(() => {
          const a = randData(tb, [5, 9], 33).setRequiresGrad(true);
          const v = randData(tb, [9], 34).setRequiresGrad(true);
          const y = f(a, v);
          backward(ops.sum(ops.mul(y, randData(tb, [5, 9], 35))));
          return [y.toNumbers(), a.grad!.toNumbers(), v.grad!.toNumbers()];
        });
      const [got, want] = [run(ops.scaleColumns), run(ops.mul)];
      const tol = tb.dtype === 'f64' ? 1e-12 : 1e-6;
      for (let k = 0; k < 3; k++)
        want[k]!.forEach((w, i) =>
          assert.ok(Math.abs(got[k]![i]! - w) <= tol * (1 + Math.abs(w)), `output ${k}[${i}]`),
        );
    });

    test('a scale that does not fit names both shapes', () => {
      scope(() => {
        assert.throws(
          () => ops.scaleColumns(randData(tb, [2, 3], 36), randData(tb, [4], 37)),
          /Scale \(4\) does not fit \(2, 3\)/,
        );
      });
    });
  });
}

for (const tb of testBackends()) {
  describe(`scaledAdd on ${tb.name}`, () => {
    test('gradients of a, v and s', () => {
      gradcheck(tb, 'scaledAdd', (a, v, c) => ops.scaledAdd(a, v, c), [
        randData(tb, [2, 3, 7], 41),
        randData(tb, [2, 3, 7], 42),
        randData(tb, [7], 43),
      ]);
    });

    test('the values and gradients of add(a, mul(v, s)); scaledLinear with addTo adds to it', () => {
      const run = (f: (a: Tensor, v: Tensor, c: Tensor) => Tensor): number[][] =>
        scope(() => {
          const a = randData(tb, [4, 6], 44).setRequiresGrad(true);
          const v = randData(tb, [4, 6], 45).setRequiresGrad(true);
          const c = randData(tb, [6], 46).setRequiresGrad(true);
          backward(ops.sum(ops.mul(f(a, v, c), randData(tb, [4, 6], 47))));
          return [f(a, v, c).toNumbers(), a.grad!.toNumbers(), v.grad!.toNumbers(), c.grad!.toNumbers()];
        });
      const want = run((a, v, c) => ops.add(a, ops.mul(v, c)));
      const tol = tb.dtype === 'f64' ? 1e-12 : 1e-6;
      const near = (got: number[][], what: string) =>
        want.forEach((w, k) =>
          w.forEach((x, i) => assert.ok(Math.abs(got[k]![i]! - x) <= tol * (1 + Math.abs(x)), `${what} ${k}[${i}]`)),
        );
      near(run(ops.scaledAdd), 'scaledAdd');
      // scaledLinear(x, W, s, …, addTo) = addTo + scaledLinear(x, W, s), either formulation.
      for (const bal of [FOLD, SCALE]) {
        const b = { ...tb, backend: withBalance(tb.backend, bal) };
        const [got, ref] = [true, false].map((fused) =>
          scope(() => {
            const x = randData(b, [5, 3], 48);
            const w = randData(b, [4, 3], 49);
            const c = randData(b, [4], 50);
            const base = randData(b, [5, 4], 51);
            const y = fused
              ? ops.scaledLinear(x, w, c, undefined, undefined, base)
              : ops.add(base, ops.scaledLinear(x, w, c));
            return y.toNumbers();
          }),
        );
        got!.forEach((g, i) =>
          assert.ok(Math.abs(g - ref![i]!) <= tol * (1 + Math.abs(ref![i]!)), `addTo ${bal} [${i}]`),
        );
      }
    });
  });
}

describe('scaledLinear cost model', () => {
  test('a GPU-like balance folds training-sized products, a CPU-like one does not, one row never', () => {
    // Llama-2-7B q_proj with VeRA r = 1024, 4×512 tokens: H100-like balance folds, a CPU's does not.
    assert.equal(foldsScale(2048, 4096, 1024, true, 150), true);
    assert.equal(foldsScale(2048, 4096, 1024, true, 8), false);
    // GPT-2 small c_attn, r = 256, 4×128 tokens on a CPU: scaling the output is cheaper.
    assert.equal(foldsScale(512, 2304, 256, true, 8), false);
    // Generation: one row per step never pays for an [out, r] pass.
    assert.equal(foldsScale(1, 4096, 1024, false, 150), false);
    assert.equal(foldsScale(1, 4096, 1024, true, 1e9), false);
    // Inference over many rows folds even on a CPU (no GEMM is added then).
    assert.equal(foldsScale(8192, 2048, 256, false, 8), true);
  });
});

for (const tb0 of testBackends()) {
  const variants: [string, TestBackend][] = [
    ['folded', { ...tb0, backend: withBalance(tb0.backend, FOLD) }],
    ['scaled output', { ...tb0, backend: withBalance(tb0.backend, SCALE) }],
  ];
  describe(`scaledLinear on ${tb0.name}`, () => {
    for (const [how, tb] of variants) {
      test(`${how}: gradients of x, W and s`, () => {
        // 7 rows × 5 in → 6 out; W passed as a row slice of a larger matrix (a VeRA B_s view).
        const x = randData(tb, [7, 5], 1);
        const big = randData(tb, [9, 5], 2);
        const s = randData(tb, [6], 3);
        gradcheck(tb, `scaledLinear ${how}`, (a, w, v) => ops.scaledLinear(a, ops.slice(w, 0, 0, 6), v), [x, big, s]);
      });

      test(`${how}: with an input scale (VeRA's λ_d), gradients of x, W, s and the input scale`, () => {
        const x = randData(tb, [2, 4, 5], 11);
        const big = randData(tb, [9, 5], 12);
        const s = randData(tb, [6], 13);
        const d = randData(tb, [5], 14);
        gradcheck(
          tb,
          `scaledLinear ${how} inScale`,
          (a, w, v, e) => ops.scaledLinear(a, ops.slice(w, 0, 0, 6), v, undefined, e),
          [x, big, s, d],
        );
      });
    }

    test('folded with an input scale: the targets sharing x hold x once, no scaled copy each', () => {
      const tb = variants[0]![1];
      const held = (pre: boolean): number =>
        scope(() => {
          const x = randData(tb, [64, 16], 15).setRequiresGrad(true);
          const ws = [0, 1, 2].map((i) => randData(tb, [8, 16], 16 + i));
          const ss = [0, 1, 2].map((i) => randData(tb, [8], 20 + i).setRequiresGrad(true));
          const ds = [0, 1, 2].map((i) => randData(tb, [16], 24 + i).setRequiresGrad(true));
          const before = tb.backend.memory().allocated;
          const ys = ws.map((w, i) =>
            pre ? ops.scaledLinear(x, w, ss[i]!, undefined, ds[i]) : ops.scaledLinear(ops.mul(x, ds[i]!), w, ss[i]!),
          );
          const bytes = tb.backend.memory().allocated - before;
          ys.forEach((y) => y.dispose());
          return bytes;
        });
      const [withPre, without] = [held(true), held(false)];
      // Without: three scaled [64, 16] copies are held; with: none (x is the caller's).
      const copy = 64 * 16 * (tb0.dtype === 'f64' ? 8 : 4);
      assert.ok(without - withPre >= 3 * copy * 0.99, `held ${withPre} B vs ${without} B`);
    });

    if (tb0.dtype === 'f32')
      test('scaled output over a bf16 weight: the bits of linear, mul and add, its dv written in bf16', () => {
        const tb = variants[1]![1];
        const run = (fused: boolean): number[][] =>
          scope(() => {
            const x = randData(tb, [3, 4, 40], 60).setRequiresGrad(true);
            const w = ops.cast(randData(tb, [30, 40], 61), 'bf16');
            const s = randData(tb, [30], 62).setRequiresGrad(true);
            const base = randData(tb, [3, 4, 30], 63).setRequiresGrad(true);
            const y = fused
              ? ops.scaledLinear(x, w, s, undefined, undefined, base)
              : ops.add(base, ops.mul(ops.linear(x, w), s));
            backward(ops.sum(ops.mul(y, randData(tb, [3, 4, 30], 64))));
            return [y, x.grad!, base.grad!, s.grad!].map((t) => t.toNumbers());
          });
        const [got, want] = [run(true), run(false)];
        for (const [k, what] of ['y', 'dx', 'dbase'].entries()) assert.deepEqual(got[k], want[k], what);
        // ds: the same f32 products summed in another order.
        want[3]!.forEach((w, i) => assert.ok(Math.abs(got[3]![i]! - w) <= 1e-5 * (1 + Math.abs(w)), `ds[${i}]`));
      });

    test('both formulations give the same values and gradients (batched input)', () => {
      const run = (tb: TestBackend): number[][] =>
        scope(() => {
          const x = randData(tb, [2, 3, 8], 4).setRequiresGrad(true);
          const w = randData(tb, [5, 8], 5);
          const s = randData(tb, [5], 6).setRequiresGrad(true);
          const y = ops.scaledLinear(x, w, s);
          backward(ops.sum(ops.mul(y, randData(tb, [2, 3, 5], 7))));
          return [y.toNumbers(), x.grad!.toNumbers(), s.grad!.toNumbers()];
        });
      const [a, b] = variants.map(([, tb]) => run(tb));
      const tol = tb0.dtype === 'f64' ? 1e-12 : 1e-5;
      for (let k = 0; k < 3; k++) {
        a![k]!.forEach((v, i) => assert.ok(Math.abs(v - b![k]![i]!) <= tol * (1 + Math.abs(v)), `output ${k}[${i}]`));
      }
    });
  });

  if (tb0.backend.dtypes.includes('bf16') && tb0.dtype === 'f32') {
    test(`scaledLinear on ${tb0.name}: a bf16 weight folds within bf16 rounding of the scaled output`, () => {
      const [fold, plain] = [FOLD, SCALE].map((bal) =>
        scope(() => {
          const backend = withBalance(tb0.backend, bal);
          const x = randData({ ...tb0, backend }, [16, 32], 8).setRequiresGrad(true);
          const master = randData({ ...tb0, backend }, [24, 32], 9);
          const w = ops.cast(master, 'bf16');
          const s = randData({ ...tb0, backend }, [24], 10).setRequiresGrad(true);
          const y = ops.scaledLinear(x, w, s, master);
          backward(ops.sum(y));
          return [y, x.grad!, s.grad!].map((t: Tensor) => t.toNumbers());
        }),
      );
      for (let k = 0; k < 3; k++) {
        const ref = plain![k]!;
        const scale = Math.max(...ref.map(Math.abs));
        const worst = Math.max(...ref.map((v, i) => Math.abs(v - fold![k]![i]!)));
        // bf16 keeps 8 bits: the fold's extra rounding of s ⊙ W moves a 32-term dot product by ≲ 2⁻⁸.
        assert.ok(worst <= scale / 128, `output ${k}: worst |fold − scaled| ${worst} vs max ${scale}`);
      }
    });
  }

  test(`scaledLinear on ${tb0.name}: a scale that does not fit the weight names both shapes`, () => {
    const x = tensor([1, 2], { shape: [1, 2], dtype: tb0.dtype, backend: tb0.backend });
    const w = tensor([1, 2, 3, 4], { shape: [2, 2], dtype: tb0.dtype, backend: tb0.backend });
    const s = tensor([1, 2, 3], { shape: [3], dtype: tb0.dtype, backend: tb0.backend });
    assert.throws(() => ops.scaledLinear(x, w, s), /\[scaledLinear\] Scale \(3\) does not fit weight \(2, 2\)/);
    const fold = { ...tb0, backend: withBalance(tb0.backend, FOLD) };
    const xf = randData(fold, [4, 2], 1);
    const wf = randData(fold, [2, 2], 2);
    const bad = randData(fold, [3, 2], 3);
    assert.throws(
      () => ops.scaledLinear(xf, wf, randData(fold, [2], 4).setRequiresGrad(true), bad),
      /\[scaledLinear\] Master .* \(3, 2\) is not a float copy of weight \(2, 2\)/,
    );
  });
}

for (const tb of testBackends().filter((t) => t.backend.dtypes.includes('bf16') && t.dtype === 'f32')) {
  test(`castLinear on ${tb.name}: bf16 GEMMs forward and backward within bf16 rounding of f32, gradients f32`, () => {
    const [lo, hi] = (['bf16', 'f32'] as const).map((dtype) =>
      scope(() => {
        const x = randData(tb, [3, 5, 32], 11).setRequiresGrad(true);
        const w = randData(tb, [24, 32], 12).setRequiresGrad(true);
        const y = ops.castLinear(x, w, dtype, 0.75);
        backward(ops.sum(ops.mul(y, randData(tb, [3, 5, 24], 13))));
        assert.equal(w.grad!.dtype, 'f32');
        return [y, x.grad!, w.grad!].map((t: Tensor) => t.toNumbers());
      }),
    );
    for (let k = 0; k < 3; k++) {
      const ref = hi![k]!;
      const scale = Math.max(...ref.map(Math.abs));
      const worst = Math.max(...ref.map((v, i) => Math.abs(v - lo![k]![i]!)));
      assert.ok(worst > 0, `output ${k}: the bf16 path rounds`);
      assert.ok(worst <= scale / 64, `output ${k}: worst |bf16 − f32| ${worst} vs max ${scale}`);
    }
  });
}

for (const tb of testBackends()) {
  test(`castLinear on ${tb.name}: in the weight's own dtype it is linear times the scale`, () => {
    const x = randData(tb, [4, 6], 14).setRequiresGrad(true);
    const w = randData(tb, [3, 6], 15).setRequiresGrad(true);
    gradcheck(tb, 'castLinear', (a, b) => ops.castLinear(a, b, 'f32', 1.5), [x, w]);
    const a = ops.castLinear(x, w, 'f32', 1.5).toNumbers();
    const b = ops.mulScalar(ops.linear(x, w), 1.5).toNumbers();
    assert.deepEqual(a, b);
  });
}
