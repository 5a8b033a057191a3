// BertConfig / RobertaConfig as a typed, validated view (absolute position embeddings, encoder only).

import { type Activation, activation } from '../common.js';
import { ConfigReader, type HFConfig } from '../config-utils.js';

export type BertVariant = 'bert' | 'roberta';

export interface BertConfig {
  variant: BertVariant;
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: Activation;
  hiddenDropoutProb: number;
  /** Dropout of the attention probabilities (attention_probs_dropout_prob). */
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
  /** RoBERTa's padding_idx: position ids count from it and skip padding tokens. */
  padTokenId: number;
  numLabels: number;
  classifierDropout: number;
}

export function parseBertConfig(raw: HFConfig, variant: BertVariant): BertConfig {
  const c = new ConfigReader(raw, variant);
  const hiddenSize = c.int('hidden_size', 768);
  const heads = c.int('num_attention_heads', 12);
  if (hiddenSize % heads !== 0) c.fail('num_attention_heads', `(${heads}) must divide hidden_size (${hiddenSize})`);
  const posType = c.str('position_embedding_type', 'absolute');
  if (posType !== 'absolute')
    c.fail('position_embedding_type', `is ${JSON.stringify(posType)}; only "absolute" is supported`);
  if (c.bool('is_decoder', false)) c.fail('is_decoder', 'is true; only encoder (bidirectional) models are supported');
  const hiddenDropoutProb = c.prob('hidden_dropout_prob', 0.1);
  return {
    variant,
    vocabSize: c.int('vocab_size', variant === 'roberta' ? 50265 : 30522),
    hiddenSize,
    numHiddenLayers: c.int('num_hidden_layers', 12),
    numAttentionHeads: heads,
    intermediateSize: c.int('intermediate_size', 3072),
    hiddenAct: activation(c, 'hidden_act', 'gelu'),
    hiddenDropoutProb,
    attentionProbsDropoutProb: c.prob('attention_probs_dropout_prob', 0.1),
    maxPositionEmbeddings: c.int('max_position_embeddings', 512),
    typeVocabSize: c.int('type_vocab_size', 2),
    layerNormEps: c.positive('layer_norm_eps', 1e-12),
    padTokenId: c.optInt('pad_token_id') ?? (variant === 'roberta' ? 1 : 0),
    numLabels: c.numLabels(),
    classifierDropout: c.has('classifier_dropout') ? c.prob('classifier_dropout') : hiddenDropoutProb,
  };
}
