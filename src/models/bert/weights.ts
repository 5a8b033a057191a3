// BERT/RoBERTa checkpoint keys: the "bert." / "roberta." base prefix, the position_ids and
// token_type_ids buffers older checkpoints hold, and TF-converted LayerNorm.gamma/beta names.

import type { WeightSpec } from '../pretrained.js';
import type { BertVariant } from './config.js';

const renameGammaBeta = (key: string): string =>
  key.replace(/(^|\.)LayerNorm\.gamma$/, '$1LayerNorm.weight').replace(/(^|\.)LayerNorm\.beta$/, '$1LayerNorm.bias');

export function bertWeights(variant: BertVariant): WeightSpec {
  return {
    basePrefix: variant,
    ignore: [/(^|\.)embeddings\.(position_ids|token_type_ids)$/],
    rename: renameGammaBeta,
  };
}
