// GPT-2's config.json (transformers' GPT2Config) as a typed, validated view with its defaults.

import { type Activation, activation } from '../common.js';
import { ConfigReader, type HFConfig } from '../config-utils.js';

export interface GPT2Config {
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** MLP width (n_inner, default 4·n_embd). */
  nInner: number;
  activation: Activation;
  layerNormEpsilon: number;
  scaleAttnWeights: boolean;
  scaleAttnByInverseLayerIdx: boolean;
  embdPdrop: number;
  residPdrop: number;
  /** Dropout of the attention probabilities (attn_pdrop). */
  attnPdrop: number;
  tieWordEmbeddings: boolean;
  numLabels: number;
  padTokenId: number | null;
}

export function parseGPT2Config(raw: HFConfig): GPT2Config {
  const c = new ConfigReader(raw, 'gpt2');
  const nEmbd = c.int('n_embd', 768);
  const nHead = c.int('n_head', 12);
  if (nEmbd % nHead !== 0) c.fail('n_head', `(${nHead}) must divide n_embd (${nEmbd})`);
  return {
    vocabSize: c.int('vocab_size', 50257),
    nPositions: c.int('n_positions', 1024),
    nEmbd,
    nLayer: c.int('n_layer', 12),
    nHead,
    nInner: c.has('n_inner') ? c.int('n_inner') : 4 * nEmbd,
    activation: activation(c, 'activation_function', 'gelu_new'),
    layerNormEpsilon: c.positive('layer_norm_epsilon', 1e-5),
    scaleAttnWeights: c.bool('scale_attn_weights', true),
    scaleAttnByInverseLayerIdx: c.bool('scale_attn_by_inverse_layer_idx', false),
    embdPdrop: c.prob('embd_pdrop', 0.1),
    residPdrop: c.prob('resid_pdrop', 0.1),
    attnPdrop: c.prob('attn_pdrop', 0.1),
    tieWordEmbeddings: c.bool('tie_word_embeddings', true),
    numLabels: c.numLabels(),
    padTokenId: c.optInt('pad_token_id'),
  };
}
