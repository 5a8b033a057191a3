// ROUGE-L. `rougeL` is Google's rouge-score (RougeScorer(['rougeL'], use_stemmer).score_multi per
// sentence, best reference by F-measure), averaged over sentences; `rougeLCoco` is the MS-COCO caption
// evaluation's ROUGE_L (pycocoevalcap/rouge/rouge.py, beta = 1.2), the "ROUGE_L" of the E2E challenge.

import { porterStem } from './porter.js';
import { type ReferenceStreams, checkStreams, npMean, sentenceRefs } from './util.js';

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export interface RougeOptions {
  /** rouge-score's use_stemmer: NLTK's Porter stemmer on tokens longer than 3 characters. */
  useStemmer?: boolean;
}

/**
 * rouge-score's tokenize.tokenize (DefaultTokenizer): lowercase, replace every run of characters other
 * than [a-z0-9] with a space, split, optionally Porter-stem tokens longer than 3 characters, and keep
 * the non-empty tokens. Non-ASCII letters are therefore dropped, as in rouge-score.
 */
export function rougeTokenize(text: string, useStemmer = false): string[] {
  const tokens = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ');
  const out: string[] = [];
  for (const t of tokens) {
    if (t.length === 0) continue;
    const s = useStemmer && t.length > 3 ? porterStem(t) : t;
    if (s.length > 0) out.push(s); // the final "drop any empty or invalid tokens" check
  }
  return out;
}

/** Length of the longest common subsequence (rouge_scorer._lcs_table(ref, can)[-1][-1]). */
function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** rouge_scorer._score_lcs(target_tokens, prediction_tokens). */
function scoreLcs(target: readonly string[], prediction: readonly string[]): RougeScore {
  if (target.length === 0 || prediction.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(target, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / target.length;
  // scoring.fmeasure
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/**
 * ROUGE-L of one hypothesis against its references as rouge-score's `score_multi`: the score of the
 * reference with the highest F-measure (the first one on a tie, np.argmax).
 */
export function rougeLSentence(hyp: string, refs: readonly string[], opts: RougeOptions = {}): RougeScore {
  if (refs.length === 0) throw new Error('rougeL: a sentence needs at least one reference');
  const stem = opts.useStemmer ?? false;
  const prediction = rougeTokenize(hyp, stem);
  let best: RougeScore | null = null;
  for (const r of refs) {
    const s = scoreLcs(rougeTokenize(r, stem), prediction);
    if (best === null || s.fmeasure > best.fmeasure) best = s;
  }
  return best!;
}

/**
 * Sentence-level rouge-score ROUGE-L (score_multi, best reference by F-measure) averaged over the
 * sentences. `refs[k][i]` is the k-th reference of sentence i (sacreBLEU's layout, `null` = missing).
 */
export function rougeL(hyps: string[], refs: ReferenceStreams, opts: RougeOptions = {}): RougeScore {
  checkStreams('rougeL', hyps, refs);
  let p = 0;
  let r = 0;
  let f = 0;
  for (let i = 0; i < hyps.length; i++) {
    const s = rougeLSentence(hyps[i], sentenceRefs('rougeL', refs, i), opts);
    p += s.precision;
    r += s.recall;
    f += s.fmeasure;
  }
  return { precision: p / hyps.length, recall: r / hyps.length, fmeasure: f / hyps.length };
}

/** pycocoevalcap rouge.py my_lcs (LCS length of two token lists). */
function myLcs(string: readonly string[], sub: readonly string[]): number {
  return string.length < sub.length ? lcsLength(sub, string) : lcsLength(string, sub);
}

const COCO_BETA = 1.2; // "vrama91: updated the value below based on discussion with Hovey"

/**
 * pycocoevalcap Rouge.calc_score: tokens are `split(" ")` (the captions are expected already
 * tokenized -- the COCO pipeline runs Stanford's PTBTokenizer first, which this does not do);
 * P and R are the maxima over references, taken separately; F = (1 + β²)PR / (R + β²P).
 */
export function rougeLCocoSentence(hyp: string, refs: readonly string[]): number {
  if (refs.length === 0) throw new Error('rougeLCoco: a sentence needs at least one reference');
  const c = hyp.split(' ');
  let precMax = -Infinity;
  let recMax = -Infinity;
  for (const ref of refs) {
    const r = ref.split(' ');
    const lcs = myLcs(r, c);
    precMax = Math.max(precMax, lcs / c.length);
    recMax = Math.max(recMax, lcs / r.length);
  }
  if (precMax !== 0 && recMax !== 0) {
    return ((1 + COCO_BETA ** 2) * precMax * recMax) / (recMax + COCO_BETA ** 2 * precMax);
  }
  return 0;
}

/**
 * The E2E challenge's ROUGE_L: pycocoevalcap Rouge.compute_score, the mean (numpy's) of the
 * per-sentence scores. Same reference layout as `rougeL`.
 */
export function rougeLCoco(hyps: string[], refs: ReferenceStreams): number {
  checkStreams('rougeLCoco', hyps, refs);
  const scores = hyps.map((h, i) => rougeLCocoSentence(h, sentenceRefs('rougeLCoco', refs, i)));
  return npMean(scores);
}
