// Gradient check by central differences. The scalar checked is Σ f(x)·w for a fixed random w, so
// every output element contributes; inputs are rebuilt from host copies for each perturbation, which
// keeps the check backend-agnostic. Failures print the worst element and both values.

import assert from 'node:assert/strict';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator, dropoutStream } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { TestBackend } from './backends.js';

export interface GradcheckOpts {
  /** Check at most this many elements per input (spread evenly). */
  maxPoints?: number;
  /** Indices of inputs not to differentiate (e.g. frozen operands). */
  skip?: number[];
}

/** Random host data in [-1, 1) of the backend's test dtype. */
export function randData(tb: TestBackend, shape: readonly number[], seed: number, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = new Generator(seed).uniform(n, -scale, scale);
  const data = tb.dtype === 'f64' ? Float64Array.from(u) : u;
  return tensor(data, { shape, dtype: tb.dtype, backend: tb.backend });
}

export function gradcheck(
  tb: TestBackend,
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOpts = {},
): void {
  const hosts = inputs.map((t) =>
    tb.dtype === 'f64' ? Float64Array.from(t.toNumbers()) : Float32Array.from(t.toNumbers()),
  );
  const make = (data: Float64Array | Float32Array, like: Tensor) =>
    tensor(data, { shape: like.shape, dtype: tb.dtype, backend: tb.backend });
  const skip = new Set(opts.skip ?? []);

  scope(() => {
    const leaves = hosts.map((h, i) => {
      const t = make(h, inputs[i]!);
      return skip.has(i) ? t : t.setRequiresGrad(true);
    });
    const y0 = noGrad(() => f(...leaves));
    const w = make(randHost(tb, y0.numel, 977), y0);
    const loss = (xs: Tensor[]) => sum(mul(f(...xs), w));
    const l = loss(leaves);
    backward(l);

    for (let i = 0; i < inputs.length; i++) {
      if (skip.has(i)) continue;
      const analytic = leaves[i]!.grad?.toNumbers() ?? new Array<number>(hosts[i]!.length).fill(0);
      const n = hosts[i]!.length;
      const step = Math.max(1, Math.floor(n / (opts.maxPoints ?? 64)));
      let worst = { idx: -1, a: 0, num: 0, excess: -Infinity };
      for (let j = 0; j < n; j += step) {
        const eval1 = (delta: number) =>
          noGrad(() =>
            scope(() => {
              const h = hosts[i]!.slice();
              h[j] = h[j]! + delta;
              const xs = leaves.map((t, k) => (k === i ? make(h, t) : t));
              return loss(xs).item();
            }),
          );
        const num = (eval1(tb.eps) - eval1(-tb.eps)) / (2 * tb.eps);
        const a = analytic[j]!;
        const excess = Math.abs(a - num) - (tb.atol + tb.rtol * Math.abs(num));
        if (excess > worst.excess || Number.isNaN(a))
          worst = { idx: j, a, num, excess: Number.isNaN(a) ? Infinity : excess };
      }
      assert.ok(
        worst.excess <= 0,
        `${name} [${tb.name}]: gradient of input ${i} (shape ${inputs[i]!.shape.join('×')}) at element ${worst.idx}: analytic ${worst.a}, numeric ${worst.num}`,
      );
    }
  });
}

function randHost(tb: TestBackend, n: number, seed: number): Float64Array | Float32Array {
  const u = new Generator(seed).uniform(n, -1, 1);
  return tb.dtype === 'f64' ? Float64Array.from(u) : u;
}

/**
 * fn run with the dropout stream at `state`, restored afterwards: a dropout function of its input alone,
 * as gradcheck needs (every evaluation draws the same mask).
 */
export function withStream<T>(state: { seed: number; offset: number }, fn: () => T): T {
  const prev = dropoutStream.state();
  dropoutStream.restore(state);
  try {
    return fn();
  } finally {
    dropoutStream.restore(prev);
  }
}
