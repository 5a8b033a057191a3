// ops.linearCrossEntropy against crossEntropy(linear(h, W), t, reduction 'none'): the same per-row
// losses and hidden gradients for any chunking (uneven chunks, one row, all rows), with ignored rows and
// label smoothing, a bf16 head, bf16 activations; it never holds the [rows, vocab] logits; a trainable
// head and bad shapes are errors naming the op.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { JsBackend } from '../../src/backends/js/index.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { type TestBackend, testBackends } from '../helpers/backends.js';
import { randData } from '../helpers/gradcheck.js';

const TARGETS = [3, 0, -100, 6, 6, 1, 2, -100, 5, 0, 4];

function run(tb: TestBackend, fused: boolean, opts: ops.LinearCrossEntropyOptions, bf16Head = false) {
  return scope(() => {
    const h = randData(tb, [1, TARGETS.length, 5], 1, 2).setRequiresGrad(true);
    const w0 = randData(tb, [7, 5], 2, 1.5);
    const w = bf16Head ? ops.cast(w0, 'bf16') : w0;
    const t = tensor(Int32Array.from(TARGETS), { dtype: 'i32', shape: [1, TARGETS.length], backend: tb.backend });
    const loss = fused
      ? ops.linearCrossEntropy(h, w, t, opts)
      : ops.crossEntropy(ops.linear(h, w), t, { ...opts, reduction: 'none' });
    const dy = randData(tb, [1, TARGETS.length], 3);
    backward(ops.sum(ops.mul(loss, dy)));
    return { loss: loss.toNumbers(), grad: h.grad!.toNumbers(), dtype: loss.dtype };
  });
}

function close(what: string, got: number[], want: number[], tol: number): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

for (const tb of testBackends()) {
  describe(`linearCrossEntropy on ${tb.name}`, () => {
    const tol = tb.dtype === 'f64' ? 1e-12 : 2e-6;
    for (const opts of [{ chunkRows: 4 }, { chunkRows: 1 }, {}, { chunkRows: 4, labelSmoothing: 0.1 }]) {
      test(`equals crossEntropy(linear) per row, and its hidden gradient (${JSON.stringify(opts)})`, () => {
        const want = run(tb, false, opts);
        const got = run(tb, true, opts);
        assert.equal(got.dtype, want.dtype);
        close('loss', got.loss, want.loss, tol);
        close('grad', got.grad, want.grad, tol);
        assert.equal(got.loss[2], 0); // ignored rows cost nothing
      });
    }
    if (tb.dtype === 'f32' && tb.backend.dtypes.includes('bf16'))
      test('a bf16 head: the same losses; the gradient within bf16 rounding', () => {
        const want = run(tb, false, { chunkRows: 3 }, true);
        const got = run(tb, true, { chunkRows: 3 }, true);
        close('loss', got.loss, want.loss, 2e-6);
        // The dX GEMM rounds dlogits to bf16 before the row's dloss scales it (unfused: after), so the
        // two differ by bf16 rounding (2^-9 relative per operand), not more.
        close('grad', got.grad, want.grad, 8e-3);
      });
  });
}

describe('linearCrossEntropy: memory, bf16 activations, errors', () => {
  test('bf16 activations (bf16 logits chunks): f32 losses close to the unfused form', () => {
    const f32 = testBackends().find((b) => b.dtype === 'f32')!;
    const tb: TestBackend = {
      ...f32,
      name: 'js bf16 activations',
      backend: new JsBackend({ activationDType: 'bf16' }),
    };
    const want = run(tb, false, { chunkRows: 5 }, true);
    const got = run(tb, true, { chunkRows: 5 }, true);
    assert.equal(got.dtype, 'f32');
    close('loss', got.loss, want.loss, 1e-2);
    close('grad', got.grad, want.grad, 3e-2);
  });

  test('holds one [rows, H] gradient for the backward, never the [rows, V] logits', () => {
    const backend = new JsBackend();
    const held = (fused: boolean): number =>
      scope(() => {
        const h = tensor(new Float32Array(64 * 8).fill(0.1), { shape: [64, 8], backend });
        h.requiresGrad = true;
        const w = tensor(new Float32Array(1000 * 8).fill(0.01), { shape: [1000, 8], backend });
        const t = tensor(new Int32Array(64).fill(3), { dtype: 'i32', backend });
        const before = backend.memory().allocated;
        const loss: Tensor = fused
          ? ops.linearCrossEntropy(h, w, t, { chunkRows: 16 })
          : ops.crossEntropy(ops.linear(h, w), t, { reduction: 'none' });
        return backend.memory().allocated - before - loss.numel * 4;
      });
    assert.ok(held(true) <= 64 * 8 * 4 + 1024, `fused holds ${held(true)} B`);
    assert.ok(held(false) >= 64 * 1000 * 4, `unfused holds ${held(false)} B`);
  });

  test('a trainable head, mismatched shapes and a bad chunk size are errors naming the op', () => {
    const backend = new JsBackend();
    const h = tensor(new Float32Array(6), { shape: [2, 3], backend });
    const w = tensor(new Float32Array(12), { shape: [4, 3], backend });
    const t = tensor(Int32Array.from([1, 2]), { dtype: 'i32', backend });
    assert.throws(
      () => ops.linearCrossEntropy(h, tensor(new Float32Array(8), { shape: [4, 2], backend }), t),
      /\[linearCrossEntropy\] Weight \(4, 2\) does not fit hidden \(2, 3\)/,
    );
    assert.throws(
      () => ops.linearCrossEntropy(h, w, tensor(Int32Array.from([1]), { dtype: 'i32', backend })),
      /\[linearCrossEntropy\] Targets \(1\) do not match hidden \(2, 3\)/,
    );
    assert.throws(() => ops.linearCrossEntropy(h, w, t, { chunkRows: 0 }), /chunkRows = 0 must be an integer ≥ 1/);
    w.requiresGrad = true;
    assert.throws(
      () => ops.linearCrossEntropy(h, w, t),
      /\[linearCrossEntropy\] The head weight \(4, 3\) requires grad/,
    );
  });
});
