// Llama-family checkpoint keys: the "model." base prefix, the rotary inv_freq buffers some older
// checkpoints hold, and lm_head tied to embed_tokens when tie_word_embeddings.

import type { WeightSpec } from '../pretrained.js';

export const LLAMA_WEIGHTS: WeightSpec = {
  basePrefix: 'model',
  ignore: [/(^|\.)rotary_emb\.inv_freq$/],
};

/** [alias, source] pairs: lm_head.weight is model.embed_tokens.weight when tie_word_embeddings. */
export function llamaTiedWeights(tie: boolean): [string, string][] {
  return tie ? [['lm_head.weight', 'model.embed_tokens.weight']] : [];
}
