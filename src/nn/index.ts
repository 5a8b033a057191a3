export { Module, parameter } from './module.js';
export { Embedding, LayerNorm, Linear, RMSNorm, type InitOpts, type LinearLike, type LinearOpts } from './layers.js';
