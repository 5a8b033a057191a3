// The autograd engine's contract: frozen weights cost no weight-gradient GEMM, gradients accumulate,
// graphs are freed after backward (and a second backward says so), disposed tensors are detected,
// scopes bound lifetimes, and checkpointing gives the same gradients as the plain graph.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import * as ops from '../../src/ops/index.js';
import { tensor, zeros } from '../../src/tensor/creation.js';
import { DisposedError, GraphFreedError, ShapeError } from '../../src/tensor/errors.js';
import { Generator, dropoutStream } from '../../src/tensor/random.js';
import { keep, scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { countingBackend } from '../helpers/backends.js';

function rand(backend: Backend, shape: number[], seed: number, requiresGrad = false): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(new Generator(seed).uniform(n, -1, 1), { shape, backend, requiresGrad });
}

describe('autograd engine', () => {
  test('backward() skips the weight GEMM of frozen layers', () => {
    const { backend, calls, gemmShapes } = countingBackend();
    const x = rand(backend, [4, 8], 1);
    const w1 = rand(backend, [16, 8], 2); // frozen
    const w2 = rand(backend, [8, 16], 3); // frozen
    const scale = rand(backend, [16], 4, true); // the one trainable vector (VeRA's λ_b, say)
    const y = ops.linear(ops.mul(ops.linear(x, w1), scale), w2);
    calls.clear();
    gemmShapes.length = 0;
    backward(ops.sum(y));
    // Only dX of the second linear runs: no dW GEMMs, and nothing at all for the first linear.
    assert.equal(calls.get('matmul'), 1, `GEMMs run in backward: ${gemmShapes.join(', ')}`);
    assert.ok(scale.grad);
    assert.equal(w1.grad, null);
    assert.equal(w2.grad, null);
    assert.equal(x.grad, null);
  });

  test('backward() reaches every trainable leaf and accumulates across calls', () => {
    const b = new JsBackend();
    const w = rand(b, [3], 5, true);
    const loss = () => ops.sum(ops.mul(w, w));
    backward(loss());
    const g1 = w.grad!.toNumbers();
    backward(loss());
    const g2 = w.grad!.toNumbers();
    assert.deepEqual(
      g2.map((v, i) => v / g1[i]!),
      [2, 2, 2],
    );
  });

  test('a second backward through a freed graph throws GraphFreedError naming the op', () => {
    const b = new JsBackend();
    const w = rand(b, [3], 6, true);
    const l = ops.sum(ops.exp(w));
    backward(l);
    assert.throws(
      () => backward(l),
      (e: unknown) => e instanceof GraphFreedError && /"sum"/.test(e.message) && /retainGraph/.test(e.message),
    );
  });

  test('retainGraph allows a second backward', () => {
    const b = new JsBackend();
    const w = rand(b, [3], 7, true);
    const l = ops.sum(ops.exp(w));
    backward(l, { retainGraph: true });
    backward(l);
    const expected = w.toNumbers().map((v) => 2 * Math.fround(Math.exp(v)));
    w.grad!.toNumbers().forEach((g, i) => assert.ok(Math.abs(g - expected[i]!) < 1e-5));
  });

  test('using a disposed tensor throws DisposedError naming the op and shape', () => {
    const b = new JsBackend();
    const a = rand(b, [2, 3], 8);
    a.dispose();
    assert.throws(
      () => ops.exp(a),
      (e: unknown) => e instanceof DisposedError && /\[exp\]/.test(e.message) && /\(2, 3\)/.test(e.message),
    );
    assert.throws(() => a.toArray(), DisposedError);
  });

  test('shape mismatches throw ShapeError naming the op and both shapes', () => {
    const b = new JsBackend();
    assert.throws(
      () => ops.matmul(rand(b, [2, 3], 9), rand(b, [4, 5], 10)),
      (e: unknown) => e instanceof ShapeError && /\[matmul\].*\(2, 3\).*\(4, 5\)/.test(e.message),
    );
    assert.throws(
      () => ops.add(rand(b, [2, 3], 9), rand(b, [4], 10)),
      (e: unknown) => e instanceof ShapeError && /\[add\].*\(2, 3\).*\(4\)/.test(e.message),
    );
    assert.throws(() => ops.linear(rand(b, [2, 3], 9), rand(b, [4, 5], 10)), /\[linear\]/);
  });

  test('dtype mismatches throw naming the op', () => {
    const b = new JsBackend();
    const f = rand(b, [3], 11);
    const i = tensor([1, 2, 3], { dtype: 'i32', backend: b });
    assert.throws(() => ops.add(f, i), /\[add\].*i32/);
    assert.throws(() => ops.embedding(f, rand(b, [4, 2], 12)), /\[embedding\].*i32/);
  });

  test('disposed intermediates stay readable by the graph until backward passes them', () => {
    const b = new JsBackend();
    const w = rand(b, [4], 13, true);
    // The forward runs in a scope that disposes every intermediate; backward runs after it.
    const loss = scope(() => ops.sum(ops.exp(ops.mul(w, w))));
    backward(loss);
    assert.ok(w.grad);
    assert.equal(b.memory().allocated > 0, true);
  });

  test('the graph holds only what the rules read: a frozen linear keeps its weight, an add nothing', () => {
    const b = new JsBackend();
    const x = rand(b, [8, 16], 30, true);
    const w = rand(b, [32, 16], 31); // frozen
    const v = rand(b, [32], 32, true);
    const start = b.memory().allocated;
    const [loss, inScope] = scope(() => {
      const h = ops.mulScalar(x, 2); // [8, 16]: read by no rule (w is frozen, the scalar's rule reads nothing)
      const base = ops.linear(h, w); // [8, 32]: read by silu's rule
      const y = ops.mul(ops.add(base, ops.silu(base)), v); // mul reads the sum and v; add reads nothing
      const l = ops.sum(y);
      return [l, b.memory().allocated - start] as const;
    });
    // Freed with the scope: h, silu's output and y (no rule reads them); base and the sum stay.
    const freed = inScope - (b.memory().allocated - start);
    assert.ok(freed >= 8 * 16 * 4 + 2 * 8 * 32 * 4, `freed ${freed} bytes at the scope's end`);
    backward(loss);
    // d/dx of Σ (base + silu(base)) ⊙ v through the frozen linear, against the same graph kept whole.
    const again = scope(() => {
      const x2 = rand(b, [8, 16], 30, true);
      const base = ops.linear(ops.mulScalar(x2, 2), w);
      backward(ops.sum(ops.mul(ops.add(base, ops.silu(base)), v)));
      return keep(x2.grad!);
    });
    assert.deepEqual(x.grad!.toNumbers(), again.toNumbers());
  });

  test('scope() frees everything but its result, and backward frees the graph', () => {
    const b = new JsBackend();
    const w = keep(rand(b, [64, 64], 14, true));
    const before = b.memory().allocated;
    for (let i = 0; i < 5; i++) {
      scope(() => {
        const y = ops.sum(ops.tanh(ops.matmul(w, w)));
        backward(y);
      });
    }
    // Only w and its gradient remain.
    assert.equal(b.memory().allocated, before + 64 * 64 * 4);
  });

  test('ops keep the operands their backward reads alive after the caller disposes them', () => {
    const b = new JsBackend();
    const x = rand(b, [1, 2, 1, 4], 20, true);
    const cos = rand(b, [1, 2, 2], 21);
    const sin = rand(b, [1, 2, 2], 22);
    const ids = tensor([1, 0, 1], { dtype: 'i32', backend: b });
    const w = rand(b, [2, 3], 23, true);
    const loss = ops.add(ops.sum(ops.rope(x, cos, sin)), ops.sum(ops.embedding(ids, w)));
    cos.dispose();
    sin.dispose();
    ids.dispose();
    backward(loss);
    assert.ok(x.grad && w.grad);
  });

  test('noGrad() records nothing', () => {
    const b = new JsBackend();
    const w = rand(b, [3], 15, true);
    const y = noGrad(() => ops.exp(w));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradFn, null);
  });

  test('checkpoint() gives the same gradients as the plain graph, dropout included', () => {
    const b = new JsBackend();
    const x = rand(b, [3, 4], 16, true);
    const w = rand(b, [4, 4], 17, true);
    const block = (t: Tensor) => ops.dropout(ops.gelu(ops.linear(t, w)), 0.3);
    const run = (useCheckpoint: boolean) => {
      x.grad = null;
      w.grad = null;
      const y = useCheckpoint ? checkpoint(block, [x], [w]) : block(x);
      backward(ops.sum(ops.mul(y, y)));
      return [x.grad!.toNumbers(), w.grad!.toNumbers()];
    };
    dropoutStream.restore({ seed: 3, offset: 0 });
    const plain = run(false);
    dropoutStream.restore({ seed: 3, offset: 0 });
    const ckpt = run(true);
    assert.deepEqual(ckpt, plain);
  });

  test('cast() between float dtypes passes gradients back', () => {
    const b = new JsBackend();
    const x = tensor(new Float64Array([0.5, -1.25]), { backend: b, dtype: 'f64', requiresGrad: true });
    backward(ops.sum(ops.mulScalar(ops.cast(x, 'f32'), 3)));
    assert.equal(x.grad!.dtype, 'f64');
    assert.deepEqual(x.grad!.toNumbers(), [3, 3]);
  });

  test('backward() of a tensor that does not require grad explains why', () => {
    const b = new JsBackend();
    assert.throws(() => backward(ops.sum(zeros([2], { backend: b }))), /does not require grad/);
  });
});
