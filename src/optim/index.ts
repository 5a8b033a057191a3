export { AdamW, type AdamWOptions, type ParamGroup } from './adamw.js';
export { type ArenaBuffer, ParamArena } from './arena.js';
export { clipGradNorm, gradNorm } from './clip.js';
