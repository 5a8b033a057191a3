// Evaluation metrics for the trainer, each matching a reference implementation: scikit-learn, scipy,
// sacreBLEU, rouge-score, pycocoevalcap (ROUGE_L, CIDEr) and mteval-v13a (NIST, E2E's BLEU).
// Text metrics take refs[k][i] = the k-th reference of sentence i (null where a sentence has fewer).

export { accuracy, f1, matthewsCorrcoef } from './classification.js';
export type { F1Options } from './classification.js';
export { pearson, spearman, rankAverage } from './correlation.js';
export { perplexity, meanNll } from './perplexity.js';
export { bleu, tokenize13a, tokenizeIntl } from './bleu.js';
export type { BleuOptions, BleuResult } from './bleu.js';
export { rougeL, rougeLSentence, rougeLCoco, rougeLCocoSentence, rougeTokenize } from './rouge.js';
export type { RougeOptions, RougeScore } from './rouge.js';
export { porterStem } from './porter.js';
export { nist, bleuMteval, mtevalTokenize } from './nist.js';
export type { NistOptions } from './nist.js';
export { cider, ciderDetailed } from './cider.js';
export type { CiderOptions, CiderResult } from './cider.js';
export { toReferenceStreams } from './util.js';
export type { ReferenceStreams } from './util.js';
