// Fine-tuning: the run config (every field also a `vera train` flag), the trainer with atomic
// checkpoints and bit-identical resume, and evaluation.

export { type Method, type TrainConfig, ConfigError, readConfigFile, resolveConfig } from './config.js';
export { type TrainOptions, type TrainResult, train } from './trainer.js';
export { type EvalResult, evaluate } from './evaluate.js';
