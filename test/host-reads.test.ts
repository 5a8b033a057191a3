// Host transfers on the hot paths, counted by wrapping a backend's download/downloadAsync/upload (as
// engine.test.ts counts GEMMs), on js and native:
// - a forward of every model family (GPT-2, Llama, BERT, RoBERTa, ViT; causal-LM and classification
//   heads; f32 and bf16 weights; eval and train mode) reads nothing back; after the first forward (which
//   may upload kept constants: the position table, RoPE's inverse frequencies) it uploads nothing either;
// - a mixed-adapter forward uploads one row mask per distinct row selection, however many layers;
// - a greedy decoding step reads exactly B i32 ids and uploads nothing (with or without the KV cache,
//   with the repetition penalty after its one upload of the prompts' token counts); a sampled step reads
//   one [B, 2(k + 1)] tensor of candidates and uploads the B chosen ids; with top-k off it reads the
//   [B, V] scores instead; streaming reads through downloadAsync, once per step.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BASE_ADAPTER, getPeftModel, loraConfig, veraConfig } from '../src/adapters/index.js';
import { noGrad } from '../src/autograd/graph.js';
import type { Backend } from '../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../src/backends/registry.js';
import { Decoder, generate, streamGenerate } from '../src/generate/generate.js';
import { loadModel } from '../src/models/auto.js';
import { tensor } from '../src/tensor/creation.js';
import { scope } from '../src/tensor/scope.js';
import { countingBackend } from './helpers/counting.js';
import { caseDir, refInputs, refsOf } from './models/fixtures.js';

const backends: [string, Backend][] = [['js', getBackend('js')]];
if (nativeAvailable()) backends.push(['native', getBackend('native')]);

const FORWARD_CASES = [
  'gpt2-lm',
  'gpt2-seqcls',
  'llama-lm',
  'llama-seqcls',
  'mistral-lm',
  'bert-seqcls',
  'roberta-seqcls',
  'vit-imgcls',
];

describe('a model forward reads nothing back to the host', () => {
  for (const [bname, real] of backends)
    for (const dtype of ['f32', 'bf16'] as const)
      test(`${bname}, ${dtype} weights: every family, eval and train mode`, () => {
        const c = countingBackend(real);
        for (const name of FORWARD_CASES) {
          const model = loadModel(caseDir(name), { backend: c.backend, dtype });
          const inputs = refInputs(refsOf(name), c.backend);
          const forward = () => noGrad(() => scope(() => void model.forward(inputs)));
          c.reset();
          model.eval();
          forward();
          assert.deepEqual(c.reads, [], `${name}: reads in the first forward`);
          assert.ok(c.uploads.length <= 2, `${name}: ${c.uploads.length} uploads in the first forward`);
          c.reset();
          forward();
          model.train();
          scope(() => void model.forward(inputs)); // dropout on, graph recorded
          assert.deepEqual(c.reads, [], `${name}: reads in later forwards`);
          assert.deepEqual(c.uploads, [], `${name}: uploads in later forwards`);
          model.dispose();
        }
      });
});

const IDS = [
  [5, 17, 3, 99, 42, 8],
  [61, 2, 77, 13, 9, 30],
  [4, 4, 120, 56, 7, 1],
];

describe('a mixed-adapter forward uploads its row masks once per call', () => {
  const [, real] = backends[backends.length - 1]!;
  test('LoRA (a masked select per layer): one upload per distinct row selection; VeRA: none', () => {
    const c = countingBackend(real);
    for (const [config, want] of [
      [loraConfig({ r: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] }), 2],
      [veraConfig({ r: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] }), 0],
    ] as const) {
      const peft = getPeftModel(loadModel(caseDir('llama-lm'), { backend: c.backend }), config, { adapterName: 'a' });
      peft.addAdapter('b', config);
      peft.model.eval();
      const inputIds = tensor(Int32Array.from(IDS.flat()), { dtype: 'i32', shape: [3, 6], backend: c.backend });
      const run = () =>
        noGrad(() =>
          scope(() => void peft.withAdapterNames(['a', 'b', BASE_ADAPTER], () => peft.model.forward({ inputIds }))),
        );
      run(); // constants of the first forward
      c.reset();
      run();
      assert.deepEqual(c.reads, []);
      // 3 targets × 2 layers select rows per adapter; the masks of 'a' and of 'b' are made once each.
      assert.equal(c.uploads.length, want, `${config.peft_type}: ${c.uploads.length} uploads`);
      peft.model.dispose();
    }
  });
});

describe('decoding reads only the chosen ids', () => {
  const prompts = [
    [3, 9, 27],
    [11, 5, 8, 60, 2],
  ];
  for (const [bname, real] of backends) {
    const c = countingBackend(real);
    const model = loadModel(caseDir('llama-lm'), { backend: c.backend });
    generate(model, prompts, { maxNewTokens: 1 }); // the first forward's constants
    const vocab = model.config['vocab_size'] as number;

    /** Each step's reads and uploads. */
    const steps = (opts: Parameters<typeof generate>[2], n = 4) => {
      const d = new Decoder(model, prompts, { maxNewTokens: n, stopTokenIds: [], ...opts });
      const out: { reads: string[]; uploads: number[] }[] = [];
      try {
        while (!d.finished) {
          c.reset();
          d.stepSync();
          out.push({ reads: c.reads.map((r) => `${r.dtype}[${r.shape.join(',')}]`), uploads: [...c.uploads] });
        }
      } finally {
        d.dispose();
      }
      return out;
    };

    test(`${bname}: a greedy step reads B ids and uploads nothing (cached, uncached, penalized)`, () => {
      for (const useCache of [true, false])
        for (const s of steps({ useCache }))
          assert.deepEqual(s, { reads: ['i32[2]'], uploads: [] }, `cache ${useCache}`);
      const penalized = steps({ repetitionPenalty: 2 });
      assert.deepEqual(penalized[0], { reads: ['i32[2]'], uploads: [2 * vocab] }, 'the seen counts, once');
      for (const s of penalized.slice(1)) assert.deepEqual(s, { reads: ['i32[2]'], uploads: [] });
    });

    test(`${bname}: a sampled step reads the candidates and uploads the B chosen ids`, () => {
      const opts = { doSample: true, temperature: 1.5, topK: 20, topP: 0.9, seed: 4 };
      for (const s of steps(opts)) assert.deepEqual(s, { reads: ['f32[2,42]'], uploads: [2] });
      for (const s of steps({ ...opts, topK: 0 })) assert.deepEqual(s, { reads: [`f32[2,${vocab}]`], uploads: [2] });
    });

    test(`${bname}: streaming reads once per step, through downloadAsync`, async () => {
      c.reset();
      let n = 0;
      for await (const _ of streamGenerate(model, prompts, { maxNewTokens: 5, stopTokenIds: [] })) n++;
      assert.equal(n, 5);
      assert.deepEqual(
        c.reads.map((r) => [r.shape, r.async]),
        Array.from({ length: 5 }, () => [[2], true]),
      );
    });
  }
});
