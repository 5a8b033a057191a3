// ops.gatedActivation: act(gate) ⊙ up saving only gate and up. Gradient-checked for each fused
// activation; values and gradients bit-identical to mul(act(gate), up) (the same kernels in the same
// order); the graph holds one [rows, M] tensor less than the two-op form; mismatched shapes refused;
// models/common.ts's gatedMul uses it for fused activations and falls back to the two ops otherwise.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import type { UnaryGradOp, UnaryOp } from '../../src/backends/backend.js';
import { gatedMul } from '../../src/models/common.js';
import * as ops from '../../src/ops/index.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { type TestBackend, testBackends } from '../helpers/backends.js';
import { gradcheck, randData } from '../helpers/gradcheck.js';

const ACTS: [UnaryOp & UnaryGradOp, (t: Tensor) => Tensor][] = [
  ['silu', ops.silu],
  ['gelu', ops.gelu],
  ['gelu_tanh', ops.geluTanh],
  ['sigmoid', ops.sigmoid],
];

for (const tb of testBackends()) {
  describe(`gatedActivation on ${tb.name}`, () => {
    for (const [op] of ACTS)
      test(`${op}: gradients of gate and up`, () => {
        gradcheck(tb, `gated ${op}`, (g, u) => ops.gatedActivation(op, g, u), [
          randData(tb, [6, 9], 1, 2),
          randData(tb, [6, 9], 2),
        ]);
      });

    test('the same bits as mul(act(gate), up), forward and backward; gatedMul picks it', () => {
      const run = (tb: TestBackend, f: (g: Tensor, u: Tensor) => Tensor): number[][] =>
        scope(() => {
          const g = randData(tb, [3, 5, 7], 3, 3).setRequiresGrad(true);
          const u = randData(tb, [3, 5, 7], 4).setRequiresGrad(true);
          const y = f(g, u);
          backward(ops.sum(ops.mul(y, randData(tb, [3, 5, 7], 5))));
          return [y.toNumbers(), g.grad!.toNumbers(), u.grad!.toNumbers()];
        });
      for (const [op, act] of ACTS) {
        const two = run(tb, (g, u) => ops.mul(act(g), u));
        assert.deepEqual(
          run(tb, (g, u) => ops.gatedActivation(op, g, u)),
          two,
          op,
        );
        assert.deepEqual(
          run(tb, (g, u) => gatedMul(act, g, u)),
          two,
          `gatedMul ${op}`,
        );
      }
      // An activation without a fused derivative: the two-op form.
      const quick = (x: Tensor) => ops.mul(x, ops.sigmoid(ops.mulScalar(x, 1.702)));
      assert.deepEqual(
        run(tb, (g, u) => gatedMul(quick, g, u)),
        run(tb, (g, u) => ops.mul(quick(g), u)),
      );
    });

    test('the graph holds gate and up, not act(gate)', () => {
      const held = (f: (g: Tensor, u: Tensor) => Tensor): number =>
        scope(() => {
          const g = randData(tb, [64, 128], 6).setRequiresGrad(true);
          const u = randData(tb, [64, 128], 7).setRequiresGrad(true);
          const before = tb.backend.memory().allocated;
          const y = f(g, u);
          return tb.backend.memory().allocated - before - y.numel * (tb.dtype === 'f64' ? 8 : 4);
        });
      assert.equal(
        held((g, u) => ops.gatedActivation('silu', g, u)),
        0,
      );
      assert.equal(
        held((g, u) => ops.mul(ops.silu(g), u)),
        64 * 128 * (tb.dtype === 'f64' ? 8 : 4),
      );
    });

    test('gate and up of different shapes are refused, naming both', () => {
      scope(() => {
        assert.throws(
          () => ops.gatedActivation('silu', randData(tb, [2, 3], 1), randData(tb, [2, 4], 2)),
          /\[gatedActivation\] gate \(2, 3\) and up \(2, 4\) differ in shape/,
        );
      });
    });
  });
}
