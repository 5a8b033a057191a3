// Config semantics the fixtures do not reach: Qwen2/Mistral sliding-window layers, "linear" RoPE,
// the number of labels, and error messages that name the field.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigReader } from '../../src/models/config-utils.js';
import { parseLlamaConfig } from '../../src/models/llama/config.js';
import { inverseFrequencies, parseRope } from '../../src/models/rope.js';

const base = { hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 3, intermediate_size: 48, vocab_size: 16 };

describe('configs', () => {
  test('Qwen2 sliding windows: use_sliding_window + max_window_layers (4.x) or layer_types (5.x)', () => {
    const v4 = { ...base, use_sliding_window: true, sliding_window: 5, max_window_layers: 1 };
    assert.deepEqual(parseLlamaConfig(v4, 'qwen2').windows, [0, 5, 5]);
    assert.deepEqual(parseLlamaConfig({ ...v4, use_sliding_window: false }, 'qwen2').windows, [0, 0, 0]);
    const v5 = { ...v4, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'] };
    assert.deepEqual(parseLlamaConfig(v5, 'qwen2').windows, [5, 0, 5]);
    assert.throws(
      () => parseLlamaConfig({ ...v5, layer_types: ['full_attention'] }, 'qwen2'),
      /"layer_types" has 1 entries/,
    );
    assert.deepEqual(parseLlamaConfig({ ...base, sliding_window: 4 }, 'mistral').windows, [4, 4, 4]);
    assert.deepEqual(parseLlamaConfig({ ...base, sliding_window: 4 }, 'llama').windows, [0, 0, 0]);
  });

  test('projection biases per variant', () => {
    const q = parseLlamaConfig(base, 'qwen2');
    assert.deepEqual([q.qkvBias, q.oProjBias, q.mlpBias], [true, false, false]);
    const l = parseLlamaConfig({ ...base, attention_bias: true, mlp_bias: true }, 'llama');
    assert.deepEqual([l.qkvBias, l.oProjBias, l.mlpBias], [true, true, true]);
    assert.equal(parseLlamaConfig({ ...base, head_dim: 16 }, 'llama').headDim, 16);
  });

  test('linear RoPE divides the default frequencies by the factor', () => {
    const plain = inverseFrequencies(parseRope({ rope_theta: 10000 }, 'llama'), 8);
    const linear = inverseFrequencies(
      parseRope({ rope_theta: 10000, rope_scaling: { type: 'linear', factor: 4 } }, 'llama'),
      8,
    );
    assert.deepEqual(
      [...linear],
      [...plain].map((x) => Math.fround(x / 4)),
    );
    assert.equal(plain[0], 1);
    assert.throws(() => parseRope({ rope_parameters: { rope_type: 'linear' } }, 'llama'), /field "factor" is required/);
  });

  test('YaRN: the attention factor (from factor, mscale/mscale_all_dim, or given), defaults, and the ramp', () => {
    const yarn = (p: Record<string, unknown>, top: Record<string, unknown> = {}) =>
      parseRope(
        {
          ...top,
          rope_parameters: { rope_theta: 10000, rope_type: 'yarn', original_max_position_embeddings: 16, ...p },
        },
        'llama',
      );
    const r = yarn({ factor: 4 });
    assert.equal(r.attentionFactor, 0.1 * Math.log(4) + 1);
    assert.deepEqual([r.betaFast, r.betaSlow, r.truncate], [32, 1, true]);
    assert.equal(yarn({ factor: 4, beta_fast: 0, beta_slow: null }).betaFast, 32, "transformers' `or 32`");
    assert.equal(yarn({ factor: 4, attention_factor: 0.5 }).attentionFactor, 0.5);
    assert.equal(
      yarn({ factor: 40, mscale: 1, mscale_all_dim: 0.5 }).attentionFactor,
      (0.1 * Math.log(40) + 1) / (0.05 * Math.log(40) + 1),
    );
    assert.equal(yarn({ factor: 0.5 }).attentionFactor, 1, 'no scaling below a factor of 1');
    // DeepSeek-V3 style: no factor, the ratio of the context lengths.
    assert.equal(yarn({}, { max_position_embeddings: 64 }).factor, 4);
    // High frequencies (first dimensions) keep their values, low ones are divided by the factor.
    const plain = inverseFrequencies(parseRope({ rope_theta: 10000 }, 'llama'), 64);
    const inv = inverseFrequencies(r, 64);
    assert.equal(inv[0], plain[0]);
    assert.equal(inv[31], Math.fround(1 / Math.fround(4 * Math.fround(1 / plain[31]!))));
    assert.ok(inv.every((x, i) => x <= plain[i]! && x >= plain[i]! / 4 - 1e-12));
    assert.throws(() => yarn({ factor: 4, truncate: 'yes' }), /field "truncate" must be true or false/);
  });

  test('numLabels: num_labels, else id2label, else 2; errors name the model type and field', () => {
    assert.equal(new ConfigReader({ id2label: { 0: 'a', 1: 'b', 2: 'c' } }, 'bert').numLabels(), 3);
    assert.equal(new ConfigReader({}, 'bert').numLabels(), 2);
    assert.throws(
      () => parseLlamaConfig({ ...base, hidden_size: -1 }, 'llama'),
      /\[config\] llama: field "hidden_size"/,
    );
    assert.throws(
      () => parseLlamaConfig({ ...base, num_key_value_heads: 3 }, 'llama'),
      /field "num_key_value_heads" \(3\) must divide num_attention_heads \(4\)/,
    );
  });
});
