// Evaluation by generation: examples read from {prompt, response} JSON Lines (responses to one prompt
// are its references), batched greedy outputs equal to each prompt generated alone, scores equal to the
// metrics on those outputs, and `vera eval --generate` printing them and writing the predictions.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { instructionPromptIds } from '../../src/data/instructions.js';
import { generate } from '../../src/generate/generate.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { bleu } from '../../src/metrics/bleu.js';
import { cider } from '../../src/metrics/cider.js';
import { toReferenceStreams } from '../../src/metrics/util.js';
import { loadModel } from '../../src/models/auto.js';
import { evaluateGeneration, readGenerationExamples } from '../../src/train/generation-eval.js';
import { train } from '../../src/train/trainer.js';
import { BIN, fixtureModel, quietSink, readJsonLines, runConfig, scratch } from './helpers.js';

let root: string;
let cleanup: () => void;
let gpt2: string;
let data: string;
before(() => {
  ({ dir: root, cleanup } = scratch('generation-eval'));
  gpt2 = fixtureModel(root, 'gpt2-lm');
  data = join(root, 'e2e.jsonl');
  const rows = [
    { prompt: 'w7 w8', response: 'w9 w10 w11' },
    { prompt: 'w12 w13 w14', response: 'w15 w16' },
    { prompt: 'w7 w8', response: 'w9 w11' }, // a second reference of the first prompt
    { prompt: 'w20', response: 'w21 w22 w23 w24' },
  ];
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
});
after(() => cleanup());

describe('evaluation by generation', () => {
  test('examples group the responses of a prompt as its references; bad lines name file and line', () => {
    assert.deepEqual(readGenerationExamples(data), [
      { prompt: 'w7 w8', references: ['w9 w10 w11', 'w9 w11'] },
      { prompt: 'w12 w13 w14', references: ['w15 w16'] },
      { prompt: 'w20', references: ['w21 w22 w23 w24'] },
    ]);
    const bad = join(root, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a", "response": "b"}\n{"prompt": 3, "response": "b"}\n');
    assert.throws(() => readGenerationExamples(bad), /bad\.jsonl:2: "prompt" must be a string, got 3/);
    writeFileSync(bad, '{"q": "a", "a": "b"}\n');
    assert.deepEqual(readGenerationExamples(bad, { promptKey: 'q', responseKey: 'a' }), [
      { prompt: 'a', references: ['b'] },
    ]);
  });

  test('batched outputs are each prompt generated alone; the scores are the metrics of those outputs', () => {
    const model = loadModel(gpt2);
    const tok = Tokenizer.fromDir(gpt2);
    const examples = readGenerationExamples(data);
    const r = evaluateGeneration(model, tok, examples, { padTokenId: 0, batchSize: 2, maxNewTokens: 5 });
    assert.equal(r.examples, 3);
    examples.forEach((e, i) => {
      const alone = generate(model, [instructionPromptIds(tok, e.prompt)], { maxNewTokens: 5, padTokenId: 0 })[0]!;
      assert.equal(r.outputs[i], tok.decode(alone, { skipSpecialTokens: true }).trim(), e.prompt);
    });
    const refs = toReferenceStreams(examples.map((e) => e.references));
    assert.equal(r.bleu, bleu(r.outputs, refs).score);
    assert.equal(r.cider, cider(r.outputs, refs));
    for (const v of [r.bleu, r.rouge_l]) assert.ok(v >= 0 && v <= 100);
  });

  test('vera train --metric bleu picks the best checkpoint by generated responses', async () => {
    const out = join(root, 'run');
    const config = runConfig({
      model: gpt2,
      train_file: data,
      validation_file: data,
      method: 'lora',
      r: 4,
      lr: 1e-2,
      batch_size: 2,
      max_steps: 4,
      eval_steps: 2,
      metric: 'bleu',
      generation_max_new_tokens: 4,
      output_dir: out,
    });
    const r = await train({ config, sink: quietSink() });
    assert.equal(r.status, 'completed', r.message);
    assert.equal(r.best?.metric, 'bleu');
    const evals = readJsonLines(join(out, 'metrics.jsonl')).filter((x) => x['type'] === 'eval');
    assert.equal(evals.length, 2);
    for (const e of evals)
      for (const k of ['eval_bleu', 'eval_rouge_l', 'eval_nist', 'eval_cider', 'eval_perplexity'])
        assert.equal(typeof e[k], 'number', k);
    const best = JSON.parse(readFileSync(join(out, 'best', 'eval_results.json'), 'utf8')) as Record<string, number>;
    assert.equal(best['eval_bleu'], r.best!.value);
    assert.throws(
      () => runConfig({ model: gpt2, train_file: data, method: 'lora', metric: 'bleu', output_dir: join(root, 'x') }),
      /--metric bleu scores generated responses: it needs --validation_file/,
    );
  });

  test('vera eval --generate prints the scores and writes the predictions', () => {
    const predictions = join(root, 'predictions.jsonl');
    const run = spawnSync(
      process.execPath,
      [
        BIN,
        'eval',
        '--model',
        gpt2,
        '--data',
        data,
        '--generate',
        '--max_new_tokens',
        '4',
        '--predictions',
        predictions,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['examples', 'bleu', 'rouge_l', 'nist', 'cider', 'samples']);
    assert.equal(out['examples'], 3);
    const lines = readFileSync(predictions, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0]!['references'], ['w9 w10 w11', 'w9 w11']);
    assert.equal(lines.length, 3);
    const notLm = spawnSync(
      process.execPath,
      [BIN, 'eval', '--model', fixtureModel(root, 'gpt2-seqcls'), '--data', data, '--generate'],
      { encoding: 'utf8' },
    );
    assert.equal(notLm.status, 1);
    assert.match(notLm.stderr, /--generate needs a causal LM; .* is a GPT2ForSequenceClassification/);
  });
});
