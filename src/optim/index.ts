export { AdamW, type AdamWOptions, type ParamGroup } from './adamw.js';
export { clipGradNorm } from './clip.js';
