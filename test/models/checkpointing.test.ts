// Gradient checkpointing (Module.setGradientCheckpointing, vera train --gradient_checkpointing): each
// family's blocks recompute their activations in the backward. The gradients equal the plain graph's
// exactly (the recomputation replays the same ops and dropout masks, here with attention and residual
// dropout on), VeRA and full fine-tuning alike, and less memory stays allocated between the forward and
// the backward.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { veraConfig } from '../../src/adapters/vera/config.js';
import { getPeftModel } from '../../src/adapters/peft-model.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { createModel } from '../../src/models/auto.js';
import type { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { Generator, dropoutStream } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { tensor } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { caseDir, refInputs, refsOf } from './fixtures.js';

const backend = getBackend(nativeAvailable() ? 'native' : 'js');
const configOf = (name: string) =>
  JSON.parse(readFileSync(join(caseDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;

const DROPOUT: Record<string, Record<string, number>> = {
  'gpt2-lm': { attn_pdrop: 0.2, resid_pdrop: 0.1, embd_pdrop: 0.1 },
  'bert-seqcls': { attention_probs_dropout_prob: 0.2, hidden_dropout_prob: 0.1 },
  'llama-lm': { attention_dropout: 0.2 },
  'vit-imgcls': { attention_probs_dropout_prob: 0.2, hidden_dropout_prob: 0.1 },
};

interface Run {
  grads: number[][];
  /** Bytes allocated between the forward and the backward, above what was there before. */
  held: number;
}

function run(name: string, method: 'vera' | 'full', checkpointing: boolean): Run {
  const model = createModel({ ...configOf(name), ...DROPOUT[name] }, { backend, seed: 7 });
  const root: Module =
    method === 'vera' ? getPeftModel(model, veraConfig({ r: 8, target_modules: 'all-linear' })) : model;
  root.train();
  root.setGradientCheckpointing(checkpointing);
  const params = root.parameters().filter((p) => p.requiresGrad);
  try {
    const inputs = refInputs(refsOf(name), backend);
    dropoutStream.restore({ seed: 99, offset: 0 });
    const before = backend.memory().allocated;
    let held = 0;
    scope(() => {
      const out = (root as unknown as { forward(i: unknown): Tensor }).forward(inputs);
      const w = tensor(new Generator(3).uniform(out.numel, -1, 1), { shape: out.shape, backend });
      const loss = ops.sum(ops.mul(out, w));
      held = backend.memory().allocated - before;
      backward(loss);
    });
    return { grads: params.map((p) => p.grad!.toNumbers()), held };
  } finally {
    root.dispose();
  }
}

describe('gradient checkpointing', () => {
  for (const name of Object.keys(DROPOUT)) {
    for (const method of ['vera', 'full'] as const) {
      test(`${name} (${method}): the same gradients as the plain graph, with less kept for the backward`, () => {
        const plain = run(name, method, false);
        const ckpt = run(name, method, true);
        assert.equal(ckpt.grads.length, plain.grads.length);
        assert.ok(plain.grads.length > 0);
        ckpt.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `parameter ${i}`));
        assert.ok(ckpt.held < plain.held, `kept ${ckpt.held} bytes with checkpointing, ${plain.held} without`);
      });
    }
  }
});
