// ViT: config, modules and checkpoint-key mapping (including transformers 4.x names).

export { type ViTConfig, parseViTConfig } from './config.js';
export {
  PatchProjection,
  ViTAttention,
  ViTEmbeddings,
  ViTForImageClassification,
  ViTLayer,
  ViTMLP,
  ViTModel,
  ViTPatchEmbeddings,
} from './model.js';
export { VIT_4X_LAYER_RENAMES, VIT_WEIGHTS, vitKeyFrom4x, vitKeyTo4x } from './weights.js';
