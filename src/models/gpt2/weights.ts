// GPT-2 checkpoint keys: the "transformer." base prefix (absent in bare GPT2Model checkpoints such as
// openai-community/gpt2), the causal-mask buffers older checkpoints hold, and lm_head tied to wte.

import type { WeightSpec } from '../pretrained.js';

export const GPT2_WEIGHTS: WeightSpec = {
  basePrefix: 'transformer',
  ignore: [/(^|\.)attn\.(bias|masked_bias)$/],
};

/** [alias, source] pairs: lm_head.weight is transformer.wte.weight when tie_word_embeddings. */
export function gpt2TiedWeights(tie: boolean): [string, string][] {
  return tie ? [['lm_head.weight', 'transformer.wte.weight']] : [];
}
