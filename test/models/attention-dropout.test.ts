// Attention-probability dropout in the models: each family reads its config key with transformers'
// default (GPT2Config attn_pdrop 0.1, BertConfig / RobertaConfig attention_probs_dropout_prob 0.1,
// ViTConfig attention_probs_dropout_prob 0.0, Llama / Mistral / Qwen2 attention_dropout 0.0), and the
// rate changes the forward in training mode only.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { noGrad } from '../../src/autograd/graph.js';
import { getBackend } from '../../src/backends/registry.js';
import { createModel } from '../../src/models/auto.js';
import { parseBertConfig } from '../../src/models/bert/config.js';
import { ConfigError } from '../../src/models/config-utils.js';
import { parseGPT2Config } from '../../src/models/gpt2/config.js';
import { parseLlamaConfig } from '../../src/models/llama/config.js';
import { parseViTConfig } from '../../src/models/vit/config.js';
import { dropoutStream } from '../../src/tensor/random.js';
import { caseDir, refInputs, refsOf } from './fixtures.js';

const backend = getBackend('js');
const configOf = (name: string) =>
  JSON.parse(readFileSync(join(caseDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;

describe('attention dropout rates from the config', () => {
  test("absent keys take transformers' defaults; present keys are read", () => {
    assert.equal(parseGPT2Config({}).attnPdrop, 0.1);
    assert.equal(parseGPT2Config({ attn_pdrop: 0.25 }).attnPdrop, 0.25);
    for (const variant of ['bert', 'roberta'] as const) {
      assert.equal(parseBertConfig({}, variant).attentionProbsDropoutProb, 0.1);
      assert.equal(parseBertConfig({ attention_probs_dropout_prob: 0 }, variant).attentionProbsDropoutProb, 0);
    }
    assert.equal(parseViTConfig({}).attentionProbsDropoutProb, 0);
    assert.equal(parseViTConfig({ attention_probs_dropout_prob: 0.2 }).attentionProbsDropoutProb, 0.2);
    for (const variant of ['llama', 'mistral', 'qwen2'] as const) {
      assert.equal(parseLlamaConfig({}, variant).attentionDropout, 0);
      assert.equal(parseLlamaConfig({ attention_dropout: 0.3 }, variant).attentionDropout, 0.3);
    }
  });

  test('a rate outside [0, 1) is refused, naming the field', () => {
    assert.throws(() => parseGPT2Config({ attn_pdrop: 1 }), ConfigError);
    assert.throws(() => parseGPT2Config({ attn_pdrop: 1 }), /field "attn_pdrop" must be in \[0, 1\)/);
    assert.throws(() => parseLlamaConfig({ attention_dropout: -0.5 }, 'llama'), /field "attention_dropout"/);
  });
});

describe('attention dropout in the forward', () => {
  // Fixture configs with every other dropout at 0, so attention dropout is the only random part.
  for (const [name, key] of [
    ['gpt2-lm', 'attn_pdrop'],
    ['bert-seqcls', 'attention_probs_dropout_prob'],
    ['llama-lm', 'attention_dropout'],
    ['vit-imgcls', 'attention_probs_dropout_prob'],
  ] as const) {
    test(`${name}: ${key} > 0 changes training-mode logits, never eval-mode ones`, () => {
      const inputs = refInputs(refsOf(name), backend);
      const build = (rate: number) =>
        createModel(
          { ...configOf(name), [key]: rate, ...(name === 'gpt2-lm' ? { embd_pdrop: 0, resid_pdrop: 0 } : {}) },
          {
            backend,
            seed: 7,
          },
        );
      const withRate = build(0.3);
      const without = build(0);
      const logits = (m: ReturnType<typeof build>) => {
        dropoutStream.restore({ seed: 123, offset: 0 });
        return noGrad(() => m.forward(inputs).toNumbers());
      };
      const trainOff = logits(without);
      const trainOn = logits(withRate);
      const startOffset = dropoutStream.state().offset;
      assert.ok(startOffset > 0, 'training mode drew attention masks from the dropout stream');
      assert.notDeepEqual(trainOn, trainOff);
      // Same masks for the same stream position.
      assert.deepEqual(logits(withRate), trainOn);
      withRate.eval();
      without.eval();
      const evalOn = logits(withRate);
      assert.equal(dropoutStream.state().offset, 0, 'eval mode draws nothing');
      assert.deepEqual(evalOn, logits(without));
      // With every rate at 0, training mode computes what eval mode does.
      assert.deepEqual(trainOff, evalOn);
    });
  }
});
