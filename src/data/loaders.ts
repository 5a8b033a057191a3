// The dataset loaders in one place (each format lives in its own file): text classification and
// regression (CSV/TSV/JSONL), plain text for causal LM, instruction data, image folders, IDX.

export { DataError } from './errors.js';
export { loadTextClassification, loadCausalText, type TextClassificationOpts, type CausalTextOpts } from './text.js';
export { loadInstructions, type InstructionOpts } from './instructions.js';
export { loadImageFolder, type ImageFolderOpts } from './images.js';
export { loadIdx, readIdx, type IdxOpts } from './idx.js';
