// The module trees as adapters and trainers use them: tied weights share one tensor, projections can be
// swapped for a LinearLike wrapper, gradients flow through a scoped forward, logitsToKeep, the
// classification pooling rules, and models built from a config alone.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import { getBackend } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import { GPT2ForSequenceClassification, GPT2LMHeadModel } from '../../src/models/gpt2/model.js';
import { LlamaForCausalLM } from '../../src/models/llama/model.js';
import { type LinearLike, Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { caseDir, manifest, refInputs, refsOf } from './fixtures.js';

const backend = getBackend('js');
const configOf = (name: string) =>
  JSON.parse(readFileSync(join(caseDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;

/** A LinearLike wrapper (what an adapter layer looks like) that counts calls and adds `shift`. */
class Wrapped extends Module implements LinearLike {
  calls = 0;
  constructor(
    readonly base_layer: LinearLike,
    readonly shift: number,
  ) {
    super();
  }
  get inFeatures() {
    return this.base_layer.inFeatures;
  }
  get outFeatures() {
    return this.base_layer.outFeatures;
  }
  forward(x: Tensor): Tensor {
    this.calls++;
    const y = this.base_layer.forward(x);
    return this.shift === 0 ? y : ops.add(y, this.shift);
  }
}

const run = (m: { forward(i: ReturnType<typeof refInputs>): Tensor }, name: string) =>
  noGrad(() => m.forward(refInputs(refsOf(name), backend)).toArray() as Float32Array);

describe('model trees', () => {
  test('tied lm_head shares the embedding tensor; untied heads do not', () => {
    const gpt2 = loadModel(caseDir('gpt2-lm'), { backend }) as GPT2LMHeadModel;
    assert.equal((gpt2.lm_head as Linear).weight, gpt2.transformer.wte.weight);
    assert.ok(!gpt2.stateDict().has('lm_head.weight'));
    const llama = loadModel(caseDir('llama-lm'), { backend }) as LlamaForCausalLM;
    assert.notEqual((llama.lm_head as Linear).weight, llama.model.embed_tokens.weight);
    assert.ok(llama.stateDict().has('lm_head.weight'));
  });

  test('every projection is a Linear that a LinearLike wrapper can replace without model changes', () => {
    for (const c of manifest.cases) {
      const model = loadModel(caseDir(c.name), { backend });
      const linears = model.namedModules().filter(([, m]) => m instanceof Linear);
      assert.ok(linears.length >= 4, c.name);
      const before = run(model, c.name);
      const wrappers: Wrapped[] = [];
      for (const [path] of linears) {
        const dot = path.lastIndexOf('.');
        const parent = model.namedModules().find(([p]) => p === path.slice(0, Math.max(dot, 0)))![1];
        const field = path.slice(dot + 1) as keyof Module;
        const w = new Wrapped((parent as unknown as Record<string, LinearLike>)[field]!, 0);
        (parent as unknown as Record<string, LinearLike>)[field] = w;
        wrappers.push(w);
      }
      assert.deepEqual(run(model, c.name), before, c.name);
      assert.ok(
        wrappers.every((w) => w.calls === 1),
        `${c.name}: every wrapped projection is called once`,
      );
      assert.ok(model.namedParameters().some(([n]) => n.includes('.base_layer.weight')));
    }
  });

  test('gradients flow through a forward (only to what requires grad)', () => {
    const model = loadModel(caseDir('llama-lm'), { backend }) as LlamaForCausalLM;
    const q = model.model.layers[1]!.self_attn.q_proj as Linear;
    q.weight.setRequiresGrad(true);
    const refs = refsOf('llama-lm');
    const logits = model.forward(refInputs(refs, backend)); // (2, 7, 128)
    const targets = tensor(Int32Array.from(refs.inputs['input_ids']!), { dtype: 'i32', shape: [2, 7], backend });
    backward(ops.crossEntropy(logits, targets));
    assert.ok(q.weight.grad, 'q_proj.weight.grad');
    assert.ok((q.weight.grad.toArray() as Float32Array).some((x) => x !== 0));
    assert.equal((model.lm_head as Linear).weight.grad, null);
  });

  test('every parameter of every family receives a gradient', () => {
    for (const c of manifest.cases) {
      const model = loadModel(caseDir(c.name), { backend }).unfreeze();
      backward(ops.sum(model.forward(refInputs(refsOf(c.name), backend))));
      const missing = model.namedParameters().filter(([, p]) => !p.grad);
      assert.deepEqual(
        missing.map(([n]) => n),
        [],
        c.name,
      );
    }
  });

  test('logitsToKeep computes the last positions only', () => {
    const model = loadModel(caseDir('qwen2-lm'), { backend });
    const inputs = refInputs(refsOf('qwen2-lm'), backend);
    const all = noGrad(() => model.forward(inputs));
    const last = noGrad(() => model.forward({ ...inputs, logitsToKeep: 2 }));
    assert.deepEqual(last.shape, [2, 2, 128]);
    assert.deepEqual(last.toArray(), ops.contiguous(ops.slice(all, 1, 5)).toArray());
  });

  test('decoder classification pools the last non-pad token; no pad_token_id is an error for B > 1', () => {
    const model = loadModel(caseDir('gpt2-seqcls'), { backend });
    const ids = tensor(
      [
        [5, 6, 7, 0],
        [0, 0, 0, 0],
      ],
      { dtype: 'i32', backend },
    );
    const both = noGrad(() => model.forward({ inputIds: ids }).toArray());
    const row0 = noGrad(() => model.forward({ inputIds: tensor([[5, 6, 7]], { dtype: 'i32', backend }) }).toArray());
    assert.deepEqual(
      [...both.slice(0, 3)].map((x) => Number(x).toFixed(5)),
      [...row0].map((x) => Number(x).toFixed(5)),
    );
    const row1 = noGrad(() => model.forward({ inputIds: tensor([[0]], { dtype: 'i32', backend }) }).toArray());
    assert.deepEqual(
      [...both.slice(3)].map((x) => Number(x).toFixed(5)),
      [...row1].map((x) => Number(x).toFixed(5)),
    );
    const noPad = new GPT2ForSequenceClassification({ ...configOf('gpt2-seqcls'), pad_token_id: null }, { backend });
    assert.throws(() => noPad.forward({ inputIds: ids }), /Cannot handle batch sizes > 1 if no padding token/);
  });

  test('a model built from a config alone is randomly initialised and trainable', () => {
    const model = new GPT2LMHeadModel(configOf('gpt2-lm'), { backend, generator: new Generator(1) });
    assert.deepEqual(
      model
        .namedParameters()
        .map(([n]) => n)
        .sort(),
      manifest.cases.find((c) => c.name === 'gpt2-lm')!.keys,
    );
    assert.ok(model.parameters().every((p) => p.requiresGrad));
    const logits = run(model, 'gpt2-lm');
    assert.ok(logits.every(Number.isFinite) && logits.some((x) => x !== 0));
  });
});
