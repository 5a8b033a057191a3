// bench/vera-overhead.ts states the GEMM FLOPs each case adds to the frozen base; here a small stack of
// the same construction runs one training step per case on a GEMM-counting backend, and the FLOPs its
// GEMMs actually performed equal the formula — so the bench's "FLOPs removed" is what reuse removes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { keep } from '../../src/tensor/scope.js';
import { type StackShape, TARGETS, gemmFlops, makeStack, trainingStep } from '../../bench/vera-overhead.js';
import { countingBackend } from '../helpers/backends.js';

test('vera-overhead: the GEMM FLOPs of each case are the ones the bench prints', () => {
  const shape: StackShape = { layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, mlp: 24, r: 8 };
  const [b, t] = [2, 3];
  const { backend, gemmFlops: performed } = countingBackend();
  const stack = makeStack(shape, t, backend);
  assert.ok(
    stack.parameters().some((p) => p.dtype === 'bf16'),
    'linear weights are stored in bf16',
  );
  const x = keep(tensor(new Generator(1).normal(b * t * shape.hidden), { shape: [b, t, shape.hidden], backend }));
  x.setRequiresGrad(true);
  const flopsOfStep = (opt: AdamW | null) => {
    performed.length = 0;
    trainingStep(stack, x, opt);
    return performed.reduce((s, f) => s + f, 0);
  };
  const expected = gemmFlops(shape, b * t);
  const base = flopsOfStep(null);
  assert.equal(base, expected.base);
  const peft = getPeftModel(stack, veraConfig({ r: shape.r, target_modules: TARGETS }));
  const opt = new AdamW(
    peft.trainableParameters().map(([, p]) => p),
    { lr: 1e-3 },
  );
  peft.shareVeraInput = true;
  assert.equal(flopsOfStep(opt) - base, expected.veraReuseOn);
  peft.shareVeraInput = false;
  assert.equal(flopsOfStep(opt) - base, expected.veraReuseOff);
  assert.ok(expected.veraReuseOff > expected.veraReuseOn);
});
