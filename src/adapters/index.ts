// Adapters: VeRA and LoRA in PEFT's format and API shape.

export { AdapterError } from './errors.js';
export {
  type AdaptableModel,
  type AdapterConfig,
  type LoadAdapterOpts,
  PeftModel,
  getPeftModel,
} from './peft-model.js';
export { type VeraConfig, veraConfig } from './vera/config.js';
export { makeProjections, projectionValues } from './vera/projections.js';
export { VeraLinear } from './vera/layer.js';
export { type LoraConfig, loraConfig } from './lora/config.js';
export { LoraLinear } from './lora/layer.js';
export { ModulesToSaveWrapper } from './modules-to-save.js';
export { BASE_ADAPTER } from './mixed.js';
export { type LoadTrainedOpts, adapterHead, loadBaseFor, loadTrained } from './load.js';
