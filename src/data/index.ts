// Training data: examples and datasets, loaders for text, instruction, image and IDX files, the
// built-in offline data sets, collation into tensors, and deterministic, resumable batching.

export { type Dataset, type Example, type TaskKind, IGNORE_INDEX, subset } from './example.js';
export * from './loaders.js';
export { parseDelimited, type CsvRecord } from './csv.js';
export { type Batch, type CollateOpts, collate } from './batch.js';
export { BatchSampler, type BatchSamplerOpts, type SamplerState, packSequences, splitDataset } from './sampler.js';
export {
  FASHION_MNIST_DIR,
  FASHION_MNIST_LABELS,
  UCI_SOURCES,
  fashionMnistFiles,
  loadFashionMnist,
  loadUciSentiment,
  uciSentimentDir,
  type FashionMnistFiles,
  type UciSentimentOpts,
  type UciSource,
} from './builtin.js';
