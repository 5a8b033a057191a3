// Op parity with PyTorch: outputs and gradients of every op against float64 references written by
// test/parity/gen_ops.py (fixtures/ops.json). Tolerances: js in f64 within 1e-9·(1 + |ref|);
// native in f32 within 2e-5·(1 + |ref|) (inputs are rounded to f32 first). Each backend also runs with
// its fused kernels hidden, so the composite fallbacks are checked against torch at the same tolerances.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backends/backend.js';
import * as ops from '../../src/ops/index.js';
import { fused } from '../../src/ops/kernels.js';
import { tensor, zerosLike } from '../../src/tensor/creation.js';
import type { DType } from '../../src/backends/dtype.js';
import { keep, scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { withCompositeBackends } from '../helpers/backends.js';

interface Enc {
  shape: number[];
  dtype: 'f64' | 'i32' | 'bool';
  data: number[];
}
interface Case {
  name: string;
  op: string;
  attrs: Record<string, number | boolean | string>;
  inputs: Record<string, Enc>;
  out: Enc;
  upstream?: Enc;
  grads?: Record<string, Enc>;
}

const fixture = JSON.parse(
  readFileSync(new URL('../../../test/parity/fixtures/ops.json', import.meta.url), 'utf8'),
) as { cases: Case[] };

type OpFn = (x: Record<string, Tensor>, attrs: Case['attrs']) => Tensor;
const num = (v: unknown) => v as number;

const OPS: Record<string, OpFn> = {
  ...Object.fromEntries(
    [
      'neg',
      'exp',
      'log',
      'sqrt',
      'rsqrt',
      'sin',
      'cos',
      'tanh',
      'sigmoid',
      'relu',
      'gelu',
      'geluTanh',
      'silu',
      'square',
      'abs',
      'reciprocal',
    ].map((name) => [
      name,
      (x: Record<string, Tensor>) => (ops as unknown as Record<string, (t: Tensor) => Tensor>)[name]!(x['a']!),
    ]),
  ),
  ...Object.fromEntries(
    ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'].map((name) => [
      name,
      (x: Record<string, Tensor>) =>
        (ops as unknown as Record<string, (a: Tensor, b: Tensor) => Tensor>)[name]!(x['a']!, x['b']!),
    ]),
  ),
  powScalar: (x, a) => ops.powScalar(x['a']!, num(a['s'])),
  clamp: (x, a) => ops.clamp(x['a']!, num(a['lo']), num(a['hi'])),
  sum: (x, a) => ops.sum(x['a']!, a['axes'] as unknown as number[]),
  mean: (x, a) => ops.mean(x['a']!, a['axes'] as unknown as number[]),
  amax: (x, a) => ops.amax(x['a']!, a['axes'] as unknown as number[]),
  matmul: (x) => ops.matmul(x['a']!, x['b']!),
  linear: (x) => ops.linear(x['x']!, x['w']!, x['b']!),
  softmax: (x) => ops.softmax(x['a']!),
  logSoftmax: (x) => ops.logSoftmax(x['a']!),
  layerNorm: (x, a) => ops.layerNorm(x['x']!, x['w']!, x['b']!, num(a['eps'])),
  rmsNorm: (x, a) => ops.rmsNorm(x['x']!, x['w']!, num(a['eps'])),
  embedding: (x) => ops.embedding(x['ids']!, x['w']!),
  gather: (x, a) => ops.gather(x['a']!, num(a['axis']), x['index']!),
  attention: (x, a) =>
    ops.attention(x['q']!, x['k']!, x['v']!, {
      causal: Boolean(a['causal']),
      window: num(a['window'] ?? 0),
      keyMask: x['keyMask'] ?? null,
    }),
  crossEntropy: (x, a) =>
    ops.crossEntropy(x['x']!, x['t']!, {
      labelSmoothing: num(a['labelSmoothing'] ?? 0),
      reduction: (a['reduction'] as 'mean' | 'sum' | undefined) ?? 'mean',
    }),
  rope: (x) => ops.rope(x['x']!, x['cos']!, x['sin']!),
  patchEmbed: (x) => ops.patchEmbed(x['x']!, x['w']!, x['b']!),
};

function load(e: Enc, dtype: DType, backend: Backend, requiresGrad: boolean): Tensor {
  if (e.dtype === 'f64') {
    const data = dtype === 'f64' ? Float64Array.from(e.data) : Float32Array.from(e.data);
    return tensor(data, { shape: e.shape, dtype, backend, requiresGrad });
  }
  return tensor(e.data, { shape: e.shape, dtype: e.dtype, backend });
}

function assertClose(actual: number[], expected: Enc, tol: number, what: string): void {
  assert.equal(
    actual.length,
    expected.data.length,
    `${what}: ${actual.length} values, expected ${expected.data.length}`,
  );
  let worst = { i: -1, err: 0 };
  for (let i = 0; i < actual.length; i++) {
    const ref = expected.data[i]!;
    const err = Math.abs(actual[i]! - ref) / (1 + Math.abs(ref));
    if (!(err <= worst.err)) worst = { i, err };
  }
  assert.ok(
    worst.err <= tol,
    `${what}: element ${worst.i} is ${actual[worst.i]}, torch gives ${expected.data[worst.i]} (error ${worst.err.toExponential(2)} > ${tol})`,
  );
}

for (const tb of withCompositeBackends()) {
  const tol = tb.dtype === 'f64' ? 1e-9 : 2e-5;
  describe(`op parity with torch on ${tb.name}`, () => {
    for (const c of fixture.cases) {
      test(c.name, () => {
        scope(() => {
          if (c.op === 'adamw') return checkAdamW(c, tb.backend, tb.dtype, tol);
          const fn = OPS[c.op];
          assert.ok(fn, `no runner for op "${c.op}"`);
          const inputs = Object.fromEntries(
            Object.entries(c.inputs).map(([k, e]) => [k, load(e, tb.dtype, tb.backend, e.dtype === 'f64')]),
          );
          const out = fn(inputs, c.attrs);
          assert.deepEqual(out.shape, c.out.shape, `${c.name}: output shape`);
          assertClose(out.toNumbers(), c.out, tol, `${c.name} output`);
          if (!c.grads || !c.upstream) return;
          backward(out, { grad: load(c.upstream, tb.dtype, tb.backend, false) });
          for (const [k, g] of Object.entries(c.grads)) {
            const t = inputs[k]!;
            assertClose(
              t.grad ? t.grad.toNumbers() : new Array<number>(g.data.length).fill(0),
              g,
              tol,
              `${c.name} grad of ${k}`,
            );
          }
        });
      });
    }
  });
}

function checkAdamW(c: Case, backend: Backend, dtype: DType, tol: number): void {
  const p = keep(load(c.inputs['p']!, dtype, backend, false));
  const m = zerosLike(p);
  const v = zerosLike(p);
  for (let step = 1; step <= 3; step++) {
    const g = load(c.inputs[`g${step - 1}`]!, dtype, backend, false);
    fused(backend).adamw(p.view('adamw'), g.view('adamw'), m.view('adamw'), v.view('adamw'), {
      lr: num(c.attrs['lr']),
      beta1: num(c.attrs['beta1']),
      beta2: num(c.attrs['beta2']),
      eps: num(c.attrs['eps']),
      weightDecay: num(c.attrs['weightDecay']),
      step,
    });
  }
  assertClose(p.toNumbers(), c.out, tol, 'adamw parameters after 3 steps');
  p.dispose();
}
