// Gradient clipping on the backend: the norm and the clipped gradients equal the per-tensor formula
// computed on the host, nothing is read back, the launches do not grow with the number of arena
// parameters, and a norm under the limit leaves the gradients bit for bit.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm, gradNorm } from '../../src/optim/clip.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { Backend } from '../../src/backends/backend.js';
import type { DType } from '../../src/backends/dtype.js';
import { testBackends } from '../helpers/backends.js';
import { countingBackend } from '../helpers/counting.js';

function trainable(backend: Backend, dtype: DType, sizes: number[], seed: number): Tensor[] {
  const g = new Generator(seed);
  return sizes.map((n) => tensor(Array.from(g.uniform(n, -2, 2)), { dtype, backend, requiresGrad: true }));
}

/** Gradients 3·p² (sizes differ, so the norm mixes tensors of every length). */
function backwardOf(ps: readonly Tensor[]): void {
  scope(() => backward(ps.map((p) => ops.sum(ops.powScalar(p, 3))).reduce((a, b) => ops.add(a, b))));
}

/** torch's rule on the host in float64: the norm, and every gradient times min(1, max / (norm + 1e-6)). */
function reference(grads: number[][], maxNorm: number): { norm: number; clipped: number[][] } {
  const norm = Math.sqrt(grads.flat().reduce((s, g) => s + g * g, 0));
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  return { norm, clipped: grads.map((g) => g.map((v) => v * coef)) };
}

describe('clipGradNorm', () => {
  for (const tb of testBackends()) {
    const tol = tb.dtype === 'f64' ? 1e-12 : 2e-6;
    test(`arena and loose parameters: the per-tensor result, with no host read (${tb.name})`, () => {
      const c = countingBackend(tb.backend);
      const inArena = trainable(c.backend, tb.dtype, [7, 1, 33, 4], 1);
      const loose = trainable(c.backend, tb.dtype, [5], 2);
      const idle = trainable(c.backend, tb.dtype, [3], 3)[0]!; // in the arena, never gets a gradient
      new AdamW([...inArena.slice(0, 2), idle, ...inArena.slice(2)]);
      const all = [...inArena, idle, ...loose];
      backwardOf([...inArena, ...loose]);
      const grads = [...inArena, ...loose].map((p) => p.grad!.toNumbers());
      const want = reference(grads, 1);
      c.reset();
      const norm = clipGradNorm(all, 1);
      assert.equal(c.count('download'), 0, 'clipping reads nothing back');
      assert.ok(want.norm > 1, `the case clips (norm ${want.norm})`);
      assert.ok(Math.abs(norm.item() - want.norm) <= tol * want.norm, `norm ${norm.item()} vs ${want.norm}`);
      [...inArena, ...loose].forEach((p, i) =>
        p.grad!.toNumbers().forEach((v, j) => {
          const w = want.clipped[i]![j]!;
          assert.ok(Math.abs(v - w) <= tol * Math.max(1, Math.abs(w)), `gradient ${i}[${j}]: ${v} vs ${w}`);
        }),
      );
      assert.equal(idle.grad, null);
      assert.ok(Math.abs(gradNorm(all).item() - 1) < 1e-5, 'after clipping the norm is maxNorm');
    });
  }

  test('launches do not grow with the number of parameters in the arena', () => {
    const launches = (n: number): number => {
      const c = countingBackend(testBackends()[0]!.backend);
      const ps = trainable(
        c.backend,
        'f64',
        Array.from({ length: n }, (_, i) => 1 + (i % 7)),
        n,
      );
      new AdamW(ps);
      backwardOf(ps);
      c.reset();
      scope(() => clipGradNorm(ps, 1e-3));
      return c.launches();
    };
    const few = launches(4);
    assert.equal(launches(400), few);
    assert.ok(few <= 10, `${few} launches`);
  });

  test('under the limit the gradients stay bit for bit; no gradient gives a zero norm', () => {
    const backend = testBackends()[0]!.backend;
    const ps = trainable(backend, 'f64', [6, 2], 5);
    new AdamW(ps);
    backwardOf(ps);
    const before = ps.map((p) => p.grad!.toNumbers());
    const norm = clipGradNorm(ps, 1e9).item();
    assert.ok(norm > 0);
    assert.deepEqual(
      ps.map((p) => p.grad!.toNumbers()),
      before,
    );
    const fresh = trainable(backend, 'f64', [3], 6);
    assert.equal(clipGradNorm(fresh, 1).item(), 0);
  });
});
