// The front end's dtype rules for bf16 activations (src/ops/util.ts, matmul's gemmDType, autograd's
// gradient dtypes), on a js backend that declares them: bf16 products, activation-times-parameter ops
// staying bf16, full-size mixes promoting to f32, f32 statistics and losses, and every gradient in its
// tensor's dtype with f32 parameters' gradients summed in f32.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { JsBackend } from '../../src/backends/js/index.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const act = new JsBackend({ activationDType: 'bf16' });
const plain = new JsBackend();

const rand = (n: number, seed: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.37) * 0.8);

function param(backend: JsBackend, data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, { backend, shape });
  t.requiresGrad = true;
  return t;
}

describe('bf16 activation rules', () => {
  test('a bf16 product is bf16 where the backend declares bf16 activations, f32 elsewhere', () => {
    for (const [backend, want] of [
      [act, 'bf16'],
      [plain, 'f32'],
    ] as const) {
      const x = tensor(rand(12, 1), { backend, shape: [3, 4] });
      const w = ops.cast(tensor(rand(8, 2), { backend, shape: [2, 4] }), 'bf16');
      assert.equal(ops.linear(x, w).dtype, want);
      assert.equal(ops.linear(x, w, tensor(rand(2, 3), { backend })).dtype, want); // f32 bias
      assert.equal(ops.linear(x, tensor(rand(8, 2), { backend, shape: [2, 4] })).dtype, 'f32'); // f32 × f32
      const table = ops.cast(tensor(rand(20, 4), { backend, shape: [5, 4] }), 'bf16');
      assert.equal(ops.embedding(tensor(Int32Array.from([1, 4]), { backend, dtype: 'i32' }), table).dtype, want);
    }
  });

  test('elementwise: bf16 ⊙ broadcast f32 parameter stays bf16; full-size mixes promote to f32', () => {
    const h = ops.cast(tensor(rand(12, 4), { backend: act, shape: [3, 4] }), 'bf16');
    const lam = tensor(rand(4, 5), { backend: act });
    const full = tensor(rand(12, 6), { backend: act, shape: [3, 4] });
    assert.equal(ops.mul(h, lam).dtype, 'bf16');
    assert.equal(ops.add(h, h).dtype, 'bf16');
    assert.equal(ops.add(h, full).dtype, 'f32');
    assert.equal(ops.where(ops.gt(h, 0), h, lam).dtype, 'bf16');
    assert.equal(ops.silu(h).dtype, 'bf16');
    assert.equal(ops.sum(h, 0).dtype, 'bf16');
    assert.throws(() => ops.add(full, ops.cast(full, 'f64')), /\[add\] Dtypes differ: f32 and f64/);
  });

  test('norms, attention and losses: bf16 in, bf16 out, f32 statistics and loss', () => {
    const x = ops.cast(tensor(rand(2 * 3 * 2 * 4, 7), { backend: act, shape: [2, 3, 2, 4] }), 'bf16');
    const w = tensor(rand(4, 8), { backend: act });
    assert.equal(ops.rmsNorm(x, w).dtype, 'bf16');
    assert.equal(ops.layerNorm(x, w, w).dtype, 'bf16');
    assert.equal(ops.attention(x, x, x, { causal: true }).dtype, 'bf16');
    assert.throws(() => ops.rmsNorm(x, ops.cast(w, 'f64')), /\[rmsNorm\] Parameters of a bf16 input must be f32/);
    const logits = ops.cast(tensor(rand(6 * 5, 9), { backend: act, shape: [6, 5] }), 'bf16');
    const loss = ops.crossEntropy(logits, tensor(Int32Array.from([0, 1, 2, 3, 4, 0]), { backend: act, dtype: 'i32' }));
    assert.equal(loss.dtype, 'f32');
    const ref = ops.crossEntropy(
      ops.cast(logits, 'f32'),
      tensor(Int32Array.from([0, 1, 2, 3, 4, 0]), { backend: act, dtype: 'i32' }),
    );
    assert.ok(Math.abs(loss.item() - ref.item()) < 1e-6, `${loss.item()} vs ${ref.item()}`);
  });

  test("gradients: through bf16 activations, f32 inputs and parameters get f32 gradients close to the f32 run's", () => {
    const run = (backend: JsBackend) => {
      const x = param(backend, rand(24, 11), [6, 4]);
      const w = ops.cast(tensor(rand(20, 12), { backend, shape: [5, 4] }), 'bf16');
      const lam = param(backend, rand(5, 13), [5]);
      const bias = param(backend, rand(5, 14), [5]);
      const h = ops.linear(x, w, bias); // bf16 on act
      const y = ops.rmsNorm(ops.mul(h, lam), null);
      const loss = ops.sum(ops.mul(ops.cast(y, 'f32'), tensor(rand(30, 15), { backend, shape: [6, 5] })));
      backward(loss);
      return { x: x.grad!, lam: lam.grad!, bias: bias.grad!, hDType: h.dtype };
    };
    const a = run(act);
    const f = run(plain);
    assert.equal(a.hDType, 'bf16');
    for (const k of ['x', 'lam', 'bias'] as const) {
      assert.equal(a[k].dtype, 'f32', k);
      const [ga, gf] = [a[k].toArray() as Float32Array, f[k].toArray() as Float32Array];
      for (let i = 0; i < gf.length; i++)
        assert.ok(Math.abs(ga[i]! - gf[i]!) <= 3e-2 * (Math.abs(gf[i]!) + 0.1), `${k}[${i}]: ${ga[i]} vs ${gf[i]}`);
    }
  });

  test('cast between f32 and bf16 passes the gradient back in the source dtype', () => {
    const x = param(act, Float32Array.from([1.25, -3, 0.5]), [3]);
    const y = ops.cast(x, 'bf16');
    backward(ops.sum(ops.mul(ops.cast(y, 'f32'), tensor(Float32Array.from([2, 3, 4]), { backend: act }))));
    assert.equal(x.grad!.dtype, 'f32');
    assert.deepEqual(Array.from(x.grad!.toArray() as Float32Array), [2, 3, 4]);
  });
});
