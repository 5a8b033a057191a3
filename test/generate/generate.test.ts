// Generation on the causal-LM fixtures: 20 greedy tokens equal transformers' (with and without the KV
// cache), left-padded batches equal single prompts, stop tokens, streaming, seeded sampling, and flat
// memory over a long run.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultBackend } from '../../src/backends/registry.js';
import { decodeSteps, generate, streamGenerate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { caseDir, manifest, refsOf } from '../models/fixtures.js';

const CAUSAL = manifest.cases.filter((c) => refsOf(c.name).greedy_tokens).map((c) => c.name);
const models = new Map<string, PreTrainedModel>();
const modelOf = (name: string): PreTrainedModel => {
  if (!models.has(name)) models.set(name, loadModel(caseDir(name)));
  return models.get(name)!;
};

/**
 * Compares greedy tokens with the reference; a step whose reference top-2 margin is below 1e-5 is a
 * near-tie that float rounding may flip, so comparison stops there (and says so).
 */
function assertGreedy(name: string, got: number[], label: string): void {
  const refs = refsOf(name);
  const want = refs.greedy_tokens!;
  assert.equal(got.length, want.length, `${name} ${label}: token count`);
  for (let i = 0; i < want.length; i++) {
    if (refs.greedy_margins![i]! < 1e-5) {
      console.log(`${name} ${label}: reference margin ${refs.greedy_margins![i]} at step ${i}; compared ${i} tokens`);
      return;
    }
    assert.equal(got[i], want[i], `${name} ${label}: token ${i} is ${got[i]}, transformers gives ${want[i]}`);
  }
}

describe('greedy generation matches transformers', () => {
  for (const name of CAUSAL) {
    test(`${name}: 20 greedy tokens with and without the KV cache`, () => {
      const prompt = refsOf(name).greedy_prompt!;
      const opts = { maxNewTokens: 20, stopTokenIds: [] };
      assertGreedy(name, generate(modelOf(name), [prompt], opts)[0]!, 'cached');
      assertGreedy(name, generate(modelOf(name), [prompt], { ...opts, useCache: false })[0]!, 'uncached');
    });

    test(`${name}: left-padded batch gives each row's unbatched tokens`, () => {
      const model = modelOf(name);
      const prompts = [[3, 9], refsOf(name).greedy_prompt!, [7, 7, 7, 7, 7, 1], [11]];
      const opts = { maxNewTokens: 12, stopTokenIds: [] };
      const batched = generate(model, prompts, opts);
      prompts.forEach((p, r) => assert.deepEqual(batched[r], generate(model, [p], opts)[0], `row ${r}`));
    });
  }
});

describe('generation options', () => {
  const name = 'llama-lm';
  const prompt = () => refsOf(name).greedy_prompt!;

  test('stop tokens end a row (the stop token is returned); maxNewTokens bounds the rest', () => {
    const want = refsOf(name).greedy_tokens!;
    const [row] = generate(modelOf(name), [prompt()], { stopTokenIds: [want[3]!], maxNewTokens: 20 });
    assert.deepEqual(row, want.slice(0, 4));
    assert.equal(generate(modelOf(name), [prompt()], { stopTokenIds: [], maxNewTokens: 5 })[0]!.length, 5);
    assert.deepEqual(generate(modelOf(name), [prompt()], { maxNewTokens: 0 }), [[]]);
  });

  test('in a batch, a stopped row yields null while the others continue', () => {
    const want = refsOf(name).greedy_tokens!;
    const steps = [...decodeSteps(modelOf(name), [prompt(), [3, 9]], { stopTokenIds: [want[1]!], maxNewTokens: 6 })];
    assert.equal(steps[0]!.tokens[0], want[0]);
    assert.equal(steps[1]!.tokens[0], want[1]);
    for (const s of steps.slice(2)) assert.equal(s.tokens[0], null);
  });

  test('streaming yields the same tokens step by step, and can be stopped early', async () => {
    const got: number[] = [];
    for await (const s of streamGenerate(modelOf(name), [prompt()], { maxNewTokens: 20, stopTokenIds: [] }))
      got.push(s.tokens[0]!);
    assertGreedy(name, got, 'streamed');
    let n = 0;
    for await (const _ of streamGenerate(modelOf(name), [prompt()], { maxNewTokens: 20 })) if (++n === 3) break;
    assert.equal(n, 3);
  });

  test('seeded sampling is reproducible; topK = 1 is greedy', () => {
    const model = modelOf(name);
    const opts = { doSample: true, temperature: 1.5, topK: 20, topP: 0.9, maxNewTokens: 15, stopTokenIds: [] };
    const a = generate(model, [prompt(), [3, 9]], { ...opts, seed: 1 });
    assert.deepEqual(generate(model, [prompt(), [3, 9]], { ...opts, seed: 1 }), a);
    assert.notDeepEqual(generate(model, [prompt(), [3, 9]], { ...opts, seed: 2 }), a);
    const top1 = generate(model, [prompt()], { doSample: true, topK: 1, seed: 3, maxNewTokens: 20, stopTokenIds: [] });
    assertGreedy(name, top1[0]!, 'topK=1');
  });

  test('repetition penalty changes greedy output; bad options are rejected by name', () => {
    const model = modelOf(name);
    const plain = generate(model, [prompt()], { maxNewTokens: 20, stopTokenIds: [] })[0]!;
    const penalized = generate(model, [prompt()], { maxNewTokens: 20, stopTokenIds: [], repetitionPenalty: 3 })[0]!;
    assert.notDeepEqual(penalized, plain);
    assert.throws(() => generate(model, [prompt()], { temperature: 0 }), /temperature = 0 must be > 0/);
    assert.throws(() => generate(model, [prompt()], { topP: 1.5 }), /topP = 1.5/);
    assert.throws(() => generate(model, [[]]), /at least one token/);
    // Ids are checked on the host before anything runs, naming the prompt, the id and its position.
    assert.throws(
      () =>
        generate(model, [
          [1, 2],
          [3, 128, 4],
        ]),
      /\[generate\] Prompt 1: token id 128 at position 1 is outside the model's vocabulary \(vocab_size 128\)/,
    );
    assert.throws(() => generate(model, [[1], [2, 3]], { padTokenId: -1 }), /padTokenId \(left padding.*token id -1/);
    assert.equal(generate(model, [[1]], { padTokenId: -1, maxNewTokens: 2 })[0]!.length, 2, 'unused: no error');
    assert.throws(() => generate(loadModel(caseDir('bert-seqcls')), [[1]]), /causal LM/);
  });

  test('memory stays flat over a long generation and is released after it', () => {
    const model = modelOf('gpt2-lm');
    const backend = defaultBackend();
    const before = backend.memory().allocated;
    const live: number[] = [];
    for (const s of decodeSteps(
      model,
      [
        [5, 17],
        [42, 8, 1],
      ],
      { maxNewTokens: 50, stopTokenIds: [] },
    )) {
      if (s.step >= 1) live.push(backend.memory().allocated);
    }
    assert.equal(live.length, 49);
    assert.ok(
      live.every((b) => b === live[0]),
      `live bytes vary across steps: ${[...new Set(live)].join(', ')}`,
    );
    assert.equal(backend.memory().allocated, before);
  });
});
