export { Module, parameter } from './module.js';
export { Embedding, LayerNorm, Linear, RMSNorm, type InitOpts } from './layers.js';
