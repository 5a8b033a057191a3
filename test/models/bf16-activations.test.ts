// bf16 activations (Backend.activationDType, what the cuda backend declares): every model family of the
// parity fixtures, loaded with bf16 weights on a js backend that declares bf16 activations, keeps its
// activations bf16 between GEMMs and still returns f32 logits close to transformers' f32 ones; a VeRA
// training step on it gives the gradients of the f32-activation step (cosine), and holds its
// activations for the backward in much less memory. The js backend runs bf16 views through the
// widening fallback (the contract's definition), so this checks the front end's dtype rules on the CPU;
// the cuda backend's own bf16 kernels are checked against the same definition by the conformance suite.
// Tolerances: bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2% per stored element);
// through a few layers of the fixtures the logits move by about 1% of their norm, so 4e-2 bounds it
// with margin while a wrong dtype rule (an activation read as garbage, a gradient lost) is far above.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { loadModel } from '../../src/models/auto.js';
import { crossEntropy } from '../../src/ops/loss.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { caseDir, manifest, refInputs, refsOf } from './fixtures.js';
import { cosine, relErr, spreadLambdaB } from '../helpers/vectors.js';

/** A js backend declaring bf16 activations, counting the GEMMs that wrote bf16. */
function actBackend(): { backend: Backend; bf16Gemms: () => number } {
  const b = new JsBackend({ activationDType: 'bf16' });
  let n = 0;
  const mm = b.matmul.bind(b);
  b.matmul = (out: View, a: View, c: View, acc: boolean) => {
    if (out.dtype === 'bf16') n++;
    mm(out, a, c, acc);
  };
  return { backend: b, bf16Gemms: () => n };
}

describe('bf16 activations on every model family (js backend declaring them)', () => {
  for (const c of manifest.cases) {
    test(`${c.name}: bf16 GEMM outputs, f32 logits within 4e-2 of transformers' f32`, () => {
      const dir = caseDir(c.name);
      const refs = refsOf(c.name);
      const { backend, bf16Gemms } = actBackend();
      const model = loadModel(dir, { backend, dtype: 'bf16' });
      try {
        const logits = noGrad(() => model.forward(refInputs(refs, backend))) as Tensor;
        assert.equal(logits.dtype, 'f32');
        assert.ok(bf16Gemms() > 0, 'no GEMM wrote bf16');
        const err = relErr(logits.toArray() as Float32Array, refs.logits);
        assert.ok(err <= 4e-2, `relative error ${err.toExponential(2)} of the logits`);
        logits.dispose();
      } finally {
        model.dispose();
      }
    });
  }
});

describe('a VeRA step with bf16 activations (llama-lm fixture, all seven linear layers)', () => {
  const refs = refsOf('llama-lm');
  const step = (backend: Backend) => {
    const peft = getPeftModel(
      loadModel(caseDir('llama-lm'), { backend, dtype: 'bf16' }),
      veraConfig({
        r: 16,
        target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
        save_projection: false,
      }),
    );
    try {
      spreadLambdaB(peft);
      const inputs = refInputs(refs, backend);
      const before = backend.memory().allocated;
      const logits = peft.forward(inputs);
      const ids = inputs.inputIds!;
      const loss = crossEntropy(logits, ids);
      const held = backend.memory().allocated - before;
      backward(loss);
      const grads = new Map<string, Float32Array>();
      for (const [name, p] of peft.namedParameters())
        if (p.requiresGrad) grads.set(name, Float32Array.from(p.grad!.toArray() as Float32Array));
      return { loss: loss.item(), grads, held, logitsDType: logits.dtype };
    } finally {
      peft.dispose();
    }
  };

  test('loss, λ gradients and the memory held for the backward', () => {
    const f32 = step(new JsBackend());
    const { backend, bf16Gemms } = actBackend();
    const bf16 = step(backend);
    assert.ok(bf16Gemms() > 0);
    assert.equal(bf16.logitsDType, 'f32');
    assert.ok(Math.abs(bf16.loss - f32.loss) <= 1e-2 * Math.abs(f32.loss), `loss ${bf16.loss} vs ${f32.loss}`);
    assert.deepEqual([...bf16.grads.keys()].sort(), [...f32.grads.keys()].sort());
    for (const kind of ['vera_lambda_b', 'vera_lambda_d']) {
      const names = [...f32.grads.keys()].filter((n) => n.includes(kind));
      assert.ok(names.length > 0, kind);
      const cat = (m: Map<string, Float32Array>) => Float32Array.from(names.flatMap((n) => [...m.get(n)!]));
      const cos = cosine(cat(bf16.grads), cat(f32.grads));
      assert.ok(cos >= 0.99, `${kind} gradient cosine ${cos}`);
      for (const n of names) assert.ok(bf16.grads.get(n)!.every(Number.isFinite), n);
    }
    // The graph's saved activations are bf16: about half the bytes (the f32 logits and statistics stay).
    assert.ok(bf16.held <= 0.7 * f32.held, `held ${bf16.held} B with bf16 activations vs ${f32.held} B`);
  });
});
