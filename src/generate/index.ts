// Text generation for causal LMs: KV cache, sampling, batched/streamed decoding.

export { KVCache, type KVCacheOptions } from './kv-cache.js';
export {
  type SamplingOptions,
  applyRepetitionPenalty,
  argmaxOf,
  checkSamplingOptions,
  nextToken,
  sampleFrom,
  warp,
} from './sampling.js';
export {
  Decoder,
  type ForwardWrapper,
  type GenerateOptions,
  type GenerationStep,
  decodeSteps,
  generate,
  streamGenerate,
} from './generate.js';
export {
  ContinuousBatcher,
  type ContinuousOptions,
  type ContinuousStats,
  type RowFinish,
  type RowRequest,
  type RowResult,
  type RowsWrapper,
} from './continuous.js';
