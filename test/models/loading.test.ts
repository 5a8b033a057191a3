// loadModel's checks (missing/unexpected key, wrong shape, unsupported architecture or rope type, dtype),
// the layouts it also accepts (4.x rope config, bare GPT-2 checkpoint with buffers, ViT 4.x names),
// opts.device (cpu, cuda, and its agreement with opts.backend), and savePretrained round trips.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { noGrad } from '../../src/autograd/graph.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { createModel, loadModel } from '../../src/models/auto.js';
import { vitKeyFrom4x, vitKeyTo4x } from '../../src/models/vit/weights.js';
import { zeros } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, caseDir, editedCopy, manifest, refInputs, refsOf, tempDir } from './fixtures.js';

const backend = getBackend('js');
const temps: (() => void)[] = [];
after(() => temps.forEach((c) => c()));
function temp(): string {
  const t = tempDir();
  temps.push(t.cleanup);
  return t.dir;
}

function logits(dir: string, refsCase: string): Float32Array {
  const model = loadModel(dir, { backend });
  const out = noGrad(() => model.forward(refInputs(refsOf(refsCase), backend)));
  const a = out.toArray() as Float32Array;
  out.dispose();
  model.dispose();
  return a;
}

function fileKeys(dir: string): string[] {
  const ckpt = Checkpoint.open(dir);
  const names = ckpt.names().sort();
  ckpt.close();
  return names;
}

const without = (key: string) => (t: Map<string, Tensor>) => {
  t.get(key)!.dispose();
  t.delete(key);
  return t;
};

describe('loadModel errors name what is wrong', () => {
  test('a missing key', () => {
    const dir = editedCopy('llama-lm', temp(), backend, { tensors: without('model.norm.weight') });
    assert.throws(() => loadModel(dir, { backend }), /missing key "model\.norm\.weight"/);
  });

  test('an unexpected key', () => {
    const dir = editedCopy('llama-lm', temp(), backend, {
      tensors: (t) => t.set('model.layers.0.self_attn.extra.weight', zeros([2, 2], { backend })),
    });
    assert.throws(() => loadModel(dir, { backend }), /unexpected key "model\.layers\.0\.self_attn\.extra\.weight"/);
  });

  test('a wrong shape', () => {
    const key = 'model.layers.0.mlp.up_proj.weight';
    const dir = editedCopy('llama-lm', temp(), backend, {
      tensors: (t) => without(key)(t).set(key, zeros([47, 32], { backend })),
    });
    assert.throws(
      () => loadModel(dir, { backend }),
      /key "model\.layers\.0\.mlp\.up_proj\.weight" has shape \(47, 32\) in the checkpoint, expected \(48, 32\)/,
    );
  });

  test('an unsupported architecture, listing the supported ones', () => {
    const dir = editedCopy('llama-lm', temp(), backend, {
      config: (c) => ({ ...c, architectures: ['FalconForCausalLM'], model_type: 'falcon' }),
    });
    assert.throws(
      () => loadModel(dir, { backend }),
      /unsupported architecture "FalconForCausalLM".*supported architectures: .*LlamaForCausalLM.*ViTForImageClassification/,
    );
  });

  test('an architecture whose model_type belongs to another family', () => {
    const dir = editedCopy('gpt2-lm', temp(), backend, {
      config: (c) => ({ ...c, architectures: ['LlamaForCausalLM'] }),
    });
    assert.throws(() => loadModel(dir, { backend }), /LlamaForCausalLM expects model_type "llama".*"gpt2"/);
  });

  test('an unsupported rope_type (5.x rope_parameters and 4.x rope_scaling)', () => {
    const v5 = editedCopy('llama-lm', temp(), backend, {
      config: (c) => ({ ...c, rope_parameters: { rope_theta: 10000, rope_type: 'longrope', factor: 2 } }),
    });
    assert.throws(() => loadModel(v5, { backend }), /field "rope_type" is "longrope", which is not supported/);
    // yarn needs the pretraining context length.
    const yarn = editedCopy('llama-lm', temp(), backend, {
      config: (c) => ({ ...c, rope_parameters: { rope_theta: 10000, rope_type: 'yarn', factor: 2 } }),
    });
    assert.throws(
      () => loadModel(yarn, { backend }),
      /llama rope_parameters: field "original_max_position_embeddings" is required/,
    );
    const v4 = editedCopy('llama-lm', temp(), backend, {
      config: ({ rope_parameters: _, ...c }) => ({
        ...c,
        rope_theta: 10000,
        rope_scaling: { type: 'dynamic', factor: 2 },
      }),
    });
    assert.throws(() => loadModel(v4, { backend }), /field "type" is "dynamic", which is not supported/);
  });

  test('a config field of the wrong type names the field', () => {
    const dir = editedCopy('gpt2-lm', temp(), backend, { config: (c) => ({ ...c, n_head: 'four' }) });
    assert.throws(() => loadModel(dir, { backend }), /gpt2: field "n_head" must be an integer/);
    const act = editedCopy('bert-seqcls', temp(), backend, { config: (c) => ({ ...c, hidden_act: 'mish' }) });
    assert.throws(() => loadModel(act, { backend }), /field "hidden_act" is "mish", which is not supported/);
  });

  test("dtype other than 'f32' and 'bf16' is refused", () => {
    assert.throws(
      () => loadModel(caseDir('llama-lm'), { backend, dtype: 'f16' as 'f32' }),
      /dtype "f16" is not supported/,
    );
  });
});

describe('loadModel accepts other layouts', () => {
  test('4.x rope config (rope_theta + rope_scaling llama3) gives the same logits', () => {
    const dir = editedCopy('llama3-rope-lm', temp(), backend, {
      config: ({ rope_parameters, ...c }) => {
        const { rope_theta, ...scaling } = rope_parameters as Record<string, unknown>;
        return { ...c, rope_theta, rope_scaling: scaling };
      },
    });
    assert.deepEqual(logits(dir, 'llama3-rope-lm'), logits(caseDir('llama3-rope-lm'), 'llama3-rope-lm'));
  });

  test('a bare GPT2Model-style checkpoint (no "transformer." prefix, attn.bias buffers) loads', () => {
    const dir = editedCopy('gpt2-lm', temp(), backend, {
      tensors: (t) => {
        const out = new Map([...t].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
        out.set('h.0.attn.bias', zeros([1, 1, 64, 64], { backend }));
        out.set('h.0.attn.masked_bias', zeros([], { backend }));
        return out;
      },
    });
    assert.deepEqual(logits(dir, 'gpt2-lm'), logits(caseDir('gpt2-lm'), 'gpt2-lm'));
  });

  // transformers 5.17 writes ViT checkpoints with 4.x names (the fixture holds them) while its module
  // tree, state_dict and PEFT use 5.x names: both layouts must load.
  test('ViT: the 4.x-named fixture and a 5.x-named copy (nothing dropped) give the same logits', () => {
    const to4x = (k: string) =>
      k
        .replace(/^vit\.layers\.(\d+)\./, 'vit.encoder.layer.$1.')
        .replace(/\.attention\.q_proj\./, '.attention.attention.query.')
        .replace(/\.attention\.k_proj\./, '.attention.attention.key.')
        .replace(/\.attention\.v_proj\./, '.attention.attention.value.')
        .replace(/\.attention\.o_proj\./, '.attention.output.dense.')
        .replace(/\.mlp\.fc1\./, '.intermediate.dense.')
        .replace(/\.mlp\.fc2\./, '.output.dense.');
    const v5Keys = manifest.cases.find((c) => c.name === 'vit-imgcls')!.keys;
    const fixtureKeys = fileKeys(caseDir('vit-imgcls'));
    assert.ok(fixtureKeys.includes('vit.encoder.layer.1.attention.attention.query.weight'));
    assert.deepEqual(v5Keys.map(to4x).sort(), fixtureKeys);
    for (const k of fixtureKeys) assert.equal(vitKeyTo4x(vitKeyFrom4x(k)), k);
    for (const k of v5Keys) assert.equal(vitKeyFrom4x(to4x(k)), k);
    const dir = editedCopy('vit-imgcls', temp(), backend, {
      tensors: (t) => new Map([...t].map(([k, v]) => [vitKeyFrom4x(k), v])),
    });
    assert.deepEqual(fileKeys(dir), v5Keys);
    assert.deepEqual(logits(dir, 'vit-imgcls'), logits(caseDir('vit-imgcls'), 'vit-imgcls'));
  });

  test('vitKeyFrom4x maps PEFT keys and module paths', () => {
    assert.equal(
      vitKeyFrom4x('base_model.model.vit.encoder.layer.11.attention.attention.value.vera_lambda_b'),
      'base_model.model.vit.layers.11.attention.v_proj.vera_lambda_b',
    );
    assert.equal(vitKeyFrom4x('vit.encoder.layer.0.output.dense'), 'vit.layers.0.mlp.fc2');
    assert.equal(vitKeyFrom4x('vit.encoder.layer.0.layernorm_before.weight'), 'vit.layers.0.layernorm_before.weight');
    assert.equal(vitKeyFrom4x('classifier.weight'), 'classifier.weight');
  });
});

describe('loadModel opts.device', () => {
  const dir = caseDir('gpt2-lm');

  test("'cpu': the native backend when built, else js, with transformers' logits", () => {
    const model = loadModel(dir, { device: 'cpu' });
    const on = model.parameters()[0]!.backend;
    assert.equal(on.name, nativeAvailable() ? 'native' : 'js');
    assert.equal(on.device, 'cpu');
    const refs = refsOf('gpt2-lm');
    const out = noGrad(() => model.forward(refInputs(refs, on)));
    assertClose(out.toArray() as Float32Array, refs.logits, 1e-4, 1e-4, "gpt2-lm with device 'cpu'");
    out.dispose();
    model.dispose();
  });

  test("'cuda': the cuda backend where it loads, else its unavailable error", () => {
    let model;
    try {
      model = loadModel(dir, { device: 'cuda' });
    } catch (e) {
      assert.ok(process.env['VERA_REQUIRE_CUDA'] !== '1', `cuda did not load under VERA_REQUIRE_CUDA=1: ${String(e)}`);
      assert.match((e as Error).message, /^\[cuda\] The cuda backend is unavailable: /);
      return;
    }
    assert.equal(model.parameters()[0]!.backend.name, 'cuda');
    model.dispose();
  });

  test('with opts.backend: the same device is accepted, another is an error naming both (before loading)', () => {
    const model = loadModel(dir, { backend, device: 'cpu' });
    assert.equal(model.parameters()[0]!.backend, backend);
    model.dispose();
    assert.throws(
      () => loadModel(dir, { backend, device: 'cuda' }),
      /^Error: \[loadModel\] backend "js" \(on cpu\) and device 'cuda' disagree: give one of them$/,
    );
    assert.throws(() => loadModel(dir, { device: 'gpu' as 'cpu' }), /\[loadModel\] device "gpu" is not supported/);
  });

  test('createModel takes the device too', () => {
    const model = createModel(dir, { device: 'cpu', seed: 0 });
    assert.equal(model.parameters()[0]!.backend.device, 'cpu');
    model.dispose();
    assert.throws(() => createModel(dir, { backend, device: 'cuda', seed: 0 }), /\[createModel\] .* disagree/);
  });
});

describe('savePretrained', () => {
  for (const c of manifest.cases) {
    test(`${c.name}: round trip gives identical logits and the original key set`, () => {
      const model = loadModel(caseDir(c.name), { backend });
      const dir = temp();
      model.savePretrained(dir);
      model.dispose();
      assert.deepEqual(fileKeys(dir), fileKeys(caseDir(c.name)));
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(config['architectures'], [c.class]);
      assert.equal(config['dtype'], 'float32');
      assert.deepEqual(logits(dir, c.name), logits(caseDir(c.name), c.name));
    });
  }
});
