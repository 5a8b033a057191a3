// ViTConfig as a typed, validated view (square or rectangular images, square patches).

import { type Activation, activation } from '../common.js';
import { ConfigReader, type HFConfig } from '../config-utils.js';

export interface ViTConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: Activation;
  hiddenDropoutProb: number;
  /** Dropout of the attention probabilities (attention_probs_dropout_prob; ViTConfig's default is 0). */
  attentionProbsDropoutProb: number;
  layerNormEps: number;
  imageSize: [number, number];
  patchSize: number;
  numChannels: number;
  qkvBias: boolean;
  numLabels: number;
}

export function parseViTConfig(raw: HFConfig): ViTConfig {
  const c = new ConfigReader(raw, 'vit');
  const hiddenSize = c.int('hidden_size', 768);
  const heads = c.int('num_attention_heads', 12);
  if (hiddenSize % heads !== 0) c.fail('num_attention_heads', `(${heads}) must divide hidden_size (${hiddenSize})`);
  const patchSize = c.int('patch_size', 16);
  const imageSize = pair(c, 'image_size', 224);
  if (imageSize.some((s) => s % patchSize !== 0))
    c.fail('image_size', `(${imageSize.join('×')}) must be a multiple of patch_size (${patchSize})`);
  return {
    hiddenSize,
    numHiddenLayers: c.int('num_hidden_layers', 12),
    numAttentionHeads: heads,
    intermediateSize: c.int('intermediate_size', 3072),
    hiddenAct: activation(c, 'hidden_act', 'gelu'),
    hiddenDropoutProb: c.prob('hidden_dropout_prob', 0),
    attentionProbsDropoutProb: c.prob('attention_probs_dropout_prob', 0),
    layerNormEps: c.positive('layer_norm_eps', 1e-12),
    imageSize,
    patchSize,
    numChannels: c.int('num_channels', 3),
    qkvBias: c.bool('qkv_bias', true),
    numLabels: c.numLabels(),
  };
}

/** An int or a [height, width] pair (transformers accepts both for image_size). */
function pair(c: ConfigReader, field: string, def: number): [number, number] {
  const v = c.raw[field];
  if (Array.isArray(v)) {
    if (v.length !== 2 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 1))
      c.fail(field, `must be an integer or a pair of integers, got ${JSON.stringify(v)}`);
    return [v[0] as number, v[1] as number];
  }
  const n = c.int(field, def);
  return [n, n];
}
