// bench/cuda.ts on a CPU backend with tiny shapes: its random models are bf16-stored, tiled from one
// normal block without repeating rows, and its training and generation loops run (so the GPU run does
// not find a bug in the bench itself, and the loss it reports is that of a real step).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getBackend } from '../../src/backends/registry.js';
import { nativeSkip } from '../helpers/backends.js';
import { noGrad } from '../../src/autograd/graph.js';
import { tensor } from '../../src/tensor/creation.js';
import { type GenerateCase, type TrainCase, generateOurs, randomModel, trainOurs } from '../../bench/cuda.js';

const TINY_LLAMA = {
  model_type: 'llama',
  architectures: 'LlamaForCausalLM',
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 97,
  max_position_embeddings: 64,
};
const TINY_GPT2 = {
  model_type: 'gpt2',
  architectures: 'GPT2LMHeadModel',
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  vocab_size: 101,
  n_positions: 64,
};

// On the CPU backend (the GPU host's test filter "cuda" also picks this file up, without that addon).
const skip = nativeSkip();

test('bench cuda: randomModel stores linear weights in bf16, tiled without repeated rows, norms one', { skip }, () => {
  const backend = getBackend('native');
  const model = randomModel(TINY_LLAMA, backend);
  try {
    const named = new Map(model.namedParameters());
    const q = named.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.equal(q.dtype, 'bf16');
    assert.equal(named.get('model.norm.weight')!.dtype, 'f32');
    assert.deepEqual(
      [...(backend.download(named.get('model.norm.weight')!.view('t')) as Float32Array)],
      Array(32).fill(1),
    );
    const w = backend.download(q.view('t')) as Uint16Array;
    const rows = new Set<string>();
    for (let r = 0; r < 32; r++) rows.add(w.subarray(r * 32, r * 32 + 32).join(','));
    assert.equal(rows.size, 32, 'no two rows of q_proj are equal');
    assert.ok(
      model.parameters().every((p) => !p.requiresGrad),
      'frozen',
    );
    const logits = noGrad(() =>
      model.forward({ inputIds: tensor(Int32Array.from([1, 2, 3]), { shape: [1, 3], dtype: 'i32', backend }) }),
    );
    assert.deepEqual(logits.shape, [1, 3, 97]);
    assert.ok((logits.toArray() as Float32Array).every(Number.isFinite));
  } finally {
    model.dispose();
  }
});

test(
  'bench cuda: a VeRA and a LoRA training case and a generation case run, with a finite loss near ln V',
  { skip },
  () => {
    const backend = getBackend('native');
    for (const [shape, method, targets] of [
      [TINY_LLAMA, 'vera', ['q_proj', 'v_proj', 'down_proj']],
      [TINY_GPT2, 'lora', ['c_attn']],
    ] as const) {
      const c: TrainCase = {
        kind: 'train',
        name: 'tiny',
        label: 'tiny',
        shape,
        method,
        r: 8,
        targets: [...targets],
        batch: 2,
        seq: 9,
      };
      const m = trainOurs(c, backend, 2, 1);
      const v = shape.vocab_size;
      assert.ok(Math.abs(m.loss - Math.log(v)) < 0.5, `${method}: loss ${m.loss} near ln ${v} for weights of std 0.02`);
      assert.ok(m.tokensPerS > 0 && m.stepMs > 0);
      assert.ok(m.trainable > 0);
      assert.equal(m.peakGiB, null, 'native reports no peak memory');
    }
    const g: GenerateCase = {
      kind: 'generate',
      name: 'g',
      label: 'g',
      shape: TINY_LLAMA,
      batch: 3,
      prompt: 5,
      newTokens: 4,
    };
    assert.ok(generateOurs(g, backend).tokensPerS > 0);
  },
);
