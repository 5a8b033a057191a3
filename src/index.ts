// vera-ts public API, grouped by layer: tensors, autograd, ops, backends, nn, optim, io, models,
// generation, adapters.

// ---- tensors ----
export { Tensor } from './tensor/tensor.js';
export { type DType, DTYPE_BYTES, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './backends/dtype.js';
export {
  arange,
  empty,
  full,
  fullLike,
  ones,
  rand,
  randn,
  tensor,
  zeros,
  zerosLike,
  type CreateOpts,
} from './tensor/creation.js';
export { Generator, defaultGenerator, manualSeed } from './tensor/random.js';
export { keep, scope } from './tensor/scope.js';
export { DTypeError, DeviceError, DisposedError, GraphFreedError, ShapeError } from './tensor/errors.js';

// ---- autograd ----
export { backward, type BackwardOpts } from './autograd/backward.js';
export { enableGrad, isGradEnabled, noGrad } from './autograd/graph.js';
export { checkpoint } from './autograd/checkpoint.js';

// ---- ops ----
export * as ops from './ops/index.js';

// ---- backends ----
export type { Backend, MemoryStats } from './backends/backend.js';
export {
  backendForDevice,
  defaultBackend,
  getBackend,
  nativeAvailable,
  setDefaultBackend,
  withBackend,
  type BackendName,
  type DeviceName,
} from './backends/registry.js';

// ---- nn and optim ----
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';

// ---- io ----
export { SafetensorsReader, writeSafetensors, type SafetensorsInfo, type LoadOpts } from './io/safetensors.js';
export { Checkpoint } from './io/checkpoint.js';
export { IoError, SafetensorsError } from './io/errors.js';
export { readJsonFile } from './io/json.js';
export { writeFileAtomic } from './io/atomic.js';
export { Tokenizer, createStreamDecoder, type ChatMessage } from './io/tokenizer.js';
export { readImage, decodeImage, loadImageProcessorConfig, preprocessImage } from './io/image.js';

// ---- models and generation ----
export {
  loadModel,
  PreTrainedModel,
  supportedArchitectures,
  type LoadModelOptions,
  type ModelInputs,
  type Task,
} from './models/index.js';
export { KVCache, generate, streamGenerate, type GenerateOptions } from './generate/index.js';

// ---- adapters (PEFT-compatible VeRA and LoRA) ----
export * from './adapters/index.js';

// ---- training: data, metrics, the trainer ----
export * as data from './data/index.js';
export * as metrics from './metrics/index.js';
export * as training from './train/index.js';

// ---- serving many adapters from one base model (`vera serve`) ----
export { AdapterServer, HttpError, type ServeOptions, findAdapters } from './serve/server.js';
