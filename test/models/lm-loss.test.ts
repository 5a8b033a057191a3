// Causal LMs given ModelInputs.lossTargets return the per-position cross-entropy [B, T] instead of the
// logits: through ops.linearCrossEntropy for a frozen bias-free head, through the logits for a trainable
// (full fine-tuning) head; both equal crossEntropy of the logits, and VeRA's gradients agree.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { causalTargets } from '../../src/train/heads.js';
import { caseDir, refInputs, refsOf } from './fixtures.js';

const backend = nativeAvailable() ? getBackend('native') : getBackend('js');

for (const name of ['gpt2-lm', 'llama-lm']) {
  describe(`${name}: the loss for lossTargets`, () => {
    const refs = refsOf(name);
    const run = (fusedLoss: boolean, trainHead = false) => {
      const peft = getPeftModel(
        loadModel(caseDir(name), { backend }),
        veraConfig({ r: 8, target_modules: name.startsWith('gpt2') ? ['c_attn'] : ['q_proj', 'v_proj'] }),
      );
      try {
        for (const [n, p] of peft.namedParameters()) {
          if (n.includes('vera_lambda_b'))
            backend.upload(p.storage.buffer('t'), 'f32', p.offset, new Float32Array(p.numel).fill(0.1));
          if (trainHead && n.endsWith('lm_head.weight')) p.requiresGrad = true;
        }
        const inputs = refInputs(refs, backend);
        const targets = causalTargets(inputs.inputIds!);
        const loss: Tensor = fusedLoss
          ? peft.forward({ ...inputs, lossTargets: { targets, labelSmoothing: 0.05 } })
          : ops.crossEntropy(peft.forward(inputs), targets, { reduction: 'none', labelSmoothing: 0.05 });
        const op = loss.gradFn?.op;
        backward(ops.sum(loss));
        const grads = peft
          .namedParameters()
          .filter(([n]) => n.includes('vera_lambda'))
          .map(([, p]) => Array.from(p.grad!.toArray() as Float32Array));
        return { loss: Array.from(loss.toArray() as Float32Array), shape: loss.shape, grads, op };
      } finally {
        peft.dispose();
      }
    };

    for (const trainHead of [false, true]) {
      test(`equals crossEntropy of the logits, with VeRA's gradients (${trainHead ? 'trainable' : 'frozen'} head)`, () => {
        const want = run(false, trainHead);
        const got = run(true, trainHead);
        assert.deepEqual(got.shape, refs.input_shapes['input_ids']);
        assert.equal(got.op === 'linearCrossEntropy', !trainHead, `the loss came from ${got.op}`);
        const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * (1 + Math.abs(b));
        got.loss.forEach((v, i) => assert.ok(close(v, want.loss[i]!), `loss[${i}] ${v} vs ${want.loss[i]}`));
        assert.equal(got.loss.at(-1), 0); // the last position has no target
        got.grads.forEach((g, k) => g.forEach((v, i) => assert.ok(close(v, want.grads[k]![i]!), `grad ${k}[${i}]`)));
      });
    }
  });
}
