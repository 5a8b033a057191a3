// Hugging Face model families (GPT-2, Llama/Mistral/Qwen2, BERT/RoBERTa, ViT) with HF module names,
// loading from and saving to transformers' format, and the class registry.

export { loadModel, type LoadModelOptions } from './auto.js';
export { ConfigError, ConfigReader, type HFConfig } from './config-utils.js';
export { PreTrainedModel, type ModelInputs, type Task, type WeightSpec } from './pretrained.js';
export { MODEL_CLASSES, type ModelClass, resolveModelClass, supportedArchitectures } from './registry.js';
export {
  type RopeConfig,
  type RopeType,
  SUPPORTED_ROPE_TYPES,
  inverseFrequencies,
  parseRope,
  ropeTables,
} from './rope.js';
export { NoInitGenerator } from './common.js';
export * from './gpt2/index.js';
export * from './llama/index.js';
export * from './bert/index.js';
export * from './vit/index.js';
export { type ParameterDType, parameterBytes } from './storage.js';
export { defaultMaxLength, padIdFor } from './text-inputs.js';
