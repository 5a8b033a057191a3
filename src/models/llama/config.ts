// The config.json of the Llama family (LlamaConfig, MistralConfig, Qwen2Config) as one typed view:
// the variants differ in projection biases and sliding-window attention, not in module names.

import { type Activation, activation } from '../common.js';
import { ConfigReader, type HFConfig } from '../config-utils.js';
import { type RopeConfig, parseRope } from '../rope.js';

export type LlamaVariant = 'llama' | 'mistral' | 'qwen2';

export interface LlamaConfig {
  variant: LlamaVariant;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  hiddenAct: Activation;
  rmsNormEps: number;
  rope: RopeConfig;
  /** Bias on q_proj, k_proj, v_proj. */
  qkvBias: boolean;
  oProjBias: boolean;
  mlpBias: boolean;
  /** Dropout of the attention probabilities (attention_dropout). */
  attentionDropout: number;
  /** Per layer: the sliding window (keys a query sees, itself included), 0 for full attention. */
  windows: number[];
  tieWordEmbeddings: boolean;
  numLabels: number;
  padTokenId: number | null;
}

export function parseLlamaConfig(raw: HFConfig, variant: LlamaVariant): LlamaConfig {
  const c = new ConfigReader(raw, variant);
  const hiddenSize = c.int('hidden_size', 4096);
  const heads = c.int('num_attention_heads', 32);
  const kvHeads = c.has('num_key_value_heads')
    ? c.int('num_key_value_heads')
    : variant === 'mistral'
      ? Math.min(8, heads)
      : heads;
  if (heads % kvHeads !== 0) c.fail('num_key_value_heads', `(${kvHeads}) must divide num_attention_heads (${heads})`);
  if (!c.has('head_dim') && hiddenSize % heads !== 0)
    c.fail('num_attention_heads', `(${heads}) must divide hidden_size (${hiddenSize}) when head_dim is not set`);
  const headDim = c.has('head_dim') ? c.int('head_dim') : hiddenSize / heads;
  if (headDim % 2 !== 0) c.fail('head_dim', `must be even for rotary embeddings, got ${headDim}`);
  const layers = c.int('num_hidden_layers', 32);
  const attentionBias = variant === 'llama' && c.bool('attention_bias', false);
  return {
    variant,
    vocabSize: c.int('vocab_size', variant === 'qwen2' ? 151936 : 32000),
    hiddenSize,
    intermediateSize: c.int('intermediate_size', 11008),
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    hiddenAct: activation(c, 'hidden_act', 'silu'),
    rmsNormEps: c.positive('rms_norm_eps', 1e-6),
    rope: parseRope(raw, variant),
    qkvBias: variant === 'qwen2' || attentionBias,
    oProjBias: attentionBias,
    mlpBias: variant === 'llama' && c.bool('mlp_bias', false),
    attentionDropout: c.prob('attention_dropout', 0),
    windows: slidingWindows(c, variant, layers),
    tieWordEmbeddings: c.bool('tie_word_embeddings', false),
    numLabels: c.numLabels(),
    padTokenId: c.optInt('pad_token_id'),
  };
}

// Mistral: sliding_window on every layer. Qwen2: only when use_sliding_window, on the layers that
// layer_types marks "sliding_attention" (5.x) or from max_window_layers on (4.x). Llama: never.
function slidingWindows(c: ConfigReader, variant: LlamaVariant, layers: number): number[] {
  if (variant === 'llama') return new Array<number>(layers).fill(0);
  if (variant === 'mistral') return new Array<number>(layers).fill(c.optInt('sliding_window', 1) ?? 0);
  const window = c.bool('use_sliding_window', false) ? (c.optInt('sliding_window', 1) ?? 0) : 0;
  const types = c.strings('layer_types');
  if (types) {
    if (types.length !== layers)
      c.fail('layer_types', `has ${types.length} entries, expected num_hidden_layers = ${layers}`);
    return types.map((t) => {
      if (t !== 'full_attention' && t !== 'sliding_attention')
        c.fail('layer_types', `holds ${JSON.stringify(t)}; expected "full_attention" or "sliding_attention"`);
      return t === 'sliding_attention' ? window : 0;
    });
  }
  const from = c.int('max_window_layers', 28, 0);
  return Array.from({ length: layers }, (_, i) => (i >= from ? window : 0));
}
