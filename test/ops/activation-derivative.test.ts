// The GELUs' forward on a backend with its own unaryWithGrad (native) saves f'(x) instead of x: values
// and input gradients bit-identical to the recomputing path (the same backend with the kernel hidden),
// on a strided input and in both tails (where the derivative's exponential is capped below the
// value's); the graph then holds the derivative, and the input can be freed; without grad, or for f64,
// nothing changes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import * as ops from '../../src/ops/index.js';
import { hasFused, withoutFused } from '../../src/ops/kernels.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { testBackends } from '../helpers/backends.js';

const ACTS: [string, (t: Tensor) => Tensor][] = [
  ['gelu_tanh', ops.geluTanh],
  ['gelu', ops.gelu],
];

function data(seed: number, n: number, lo: number, hi: number, dtype: 'f32' | 'f64'): Float32Array | Float64Array {
  const u = new Generator(seed).uniform(n, lo, hi);
  return dtype === 'f64' ? Float64Array.from(u) : u;
}

/** [9, 40] inputs spanning both tails, read through a transpose (a strided view). */
function input(be: Backend, dtype: 'f32' | 'f64'): Tensor {
  const u = new Generator(3).uniform(9 * 40, -12, 12);
  for (const [i, v] of [-30, -9, -5.6, -5.4, 0, 5.5, 30].entries()) u[i * 7] = v;
  const data = dtype === 'f64' ? Float64Array.from(u) : u;
  return ops.transpose(tensor(data, { shape: [40, 9], dtype, backend: be }));
}

function run(be: Backend, dtype: 'f32' | 'f64', act: (t: Tensor) => Tensor): [number[], number[]] {
  return scope(() => {
    const x = input(be, dtype).setRequiresGrad(true);
    const y = act(x);
    const dy = tensor(data(4, 9 * 40, -2, 2, dtype), { shape: [9, 40], dtype, backend: be });
    backward(ops.sum(ops.mul(y, dy)));
    return [y.toNumbers(), x.grad!.toNumbers()];
  });
}

for (const tb of testBackends()) {
  describe(`activations saving f'(x) on ${tb.name}`, () => {
    const dtype = tb.dtype === 'f64' ? 'f64' : 'f32';
    const recompute = withoutFused(tb.backend, ['unaryWithGrad']);

    test('values and gradients bit-identical to the recomputing path', () => {
      for (const [op, act] of ACTS) {
        const [y, dx] = run(tb.backend, dtype, act);
        const [y0, dx0] = run(recompute, dtype, act);
        assert.deepEqual(y, y0, `${op} values`);
        assert.deepEqual(dx, dx0, `${op} gradients`);
      }
    });

    test('the graph holds the derivative where the backend computes it in the forward', () => {
      // One [64, 128] tensor either way (x or f'(x)); with the kernel, x itself is not kept by the op.
      for (const [op, act] of ACTS) {
        scope(() => {
          const x = tensor(data(5, 64 * 128, -3, 3, dtype), {
            shape: [64, 128],
            dtype,
            backend: tb.backend,
          }).setRequiresGrad(true);
          const before = tb.backend.memory().allocated;
          const y = act(x);
          const held = tb.backend.memory().allocated - before - y.numel * (dtype === 'f64' ? 8 : 4);
          const saves = dtype === 'f32' && hasFused(tb.backend, 'unaryWithGrad');
          assert.equal(held, saves ? x.numel * 4 : 0, `${op}: bytes the op allocated beyond y`);
          noGrad(() => assert.equal(act(x).numel, x.numel));
        });
      }
    });
  });
}

test(
  'native runs the GELUs through unaryWithGrad',
  { skip: !testBackends().some((t) => t.name === 'native f32') },
  () => {
    const native = testBackends().find((t) => t.name === 'native f32')!.backend;
    assert.equal(hasFused(native, 'unaryWithGrad'), true);
  },
);
