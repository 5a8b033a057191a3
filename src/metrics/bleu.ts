// Corpus BLEU exactly as sacreBLEU 2.x computes it with its defaults (sacrebleu.corpus_bleu /
// BLEU().corpus_score): 13a tokenizer (mteval-v13a's), 'exp' smoothing, max n-gram order 4, no
// effective order, closest reference length (ties → shorter), case-sensitive unless `lowercase`.

import { type ReferenceStreams, checkStreams, pyRstrip, pySplit, sentenceRefs } from './util.js';

export interface BleuOptions {
  /** sacreBLEU's `tokenize`: '13a' (default), 'none' (whitespace only) or 'intl' (mteval-v14 international). */
  tokenize?: '13a' | 'none' | 'intl';
  /** sacreBLEU's `lowercase` (Python `str.lower()` before tokenizing). */
  lowercase?: boolean;
}

export interface BleuResult {
  /** BLEU on sacreBLEU's 0–100 scale. */
  score: number;
  /** n-gram precisions in percent (smoothed as 'exp' smoothing does), n = 1..4. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  /** Total hypothesis length in tokens. */
  sysLen: number;
  /** Total closest-reference length in tokens. */
  refLen: number;
  /** Clipped n-gram matches, n = 1..4 (sacreBLEU's `counts`). */
  counts: number[];
  /** Hypothesis n-gram totals, n = 1..4 (sacreBLEU's `totals`). */
  totals: number[];
}

const MAX_ORDER = 4;

// sacrebleu/tokenizers/tokenizer_re.py (TokenizerRegexp), the post-processing of the 13a tokenizer
const RE_PUNCT = /([{-~[-`\x20-&(-+:-@/])/gu; // language-dependent part (assuming Western languages)
const RE_PERIOD_COMMA_PRE = /([^0-9])([.,])/gu; // tokenize period and comma unless preceded by a digit
const RE_PERIOD_COMMA_POST = /([.,])([^0-9])/gu; // tokenize period and comma unless followed by a digit
const RE_DASH = /([0-9])(-)/gu; // tokenize dash when preceded by a digit

/** sacreBLEU's Tokenizer13a (= mteval-v13a.pl's tokenization, without its lowercasing). */
export function tokenize13a(line: string): string {
  line = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (line.includes('&')) {
    line = line.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  line = ` ${line} `;
  line = line.replace(RE_PUNCT, ' $1 ');
  line = line.replace(RE_PERIOD_COMMA_PRE, '$1 $2 ');
  line = line.replace(RE_PERIOD_COMMA_POST, ' $1 $2');
  line = line.replace(RE_DASH, '$1 $2 ');
  return pySplit(line).join(' ');
}

// sacrebleu/tokenizers/tokenizer_intl.py (TokenizerV14International), regex module's \p classes
const RE_INTL_PRE = /(\P{N})(\p{P})/gu; // punctuation preceded by a non-digit
const RE_INTL_POST = /(\p{P})(\P{N})/gu; // punctuation followed by a non-digit
const RE_INTL_SYM = /(\p{S})/gu; // symbols

/** sacreBLEU's TokenizerV14International ('intl'). */
export function tokenizeIntl(line: string): string {
  line = line.replace(RE_INTL_PRE, '$1 $2 ');
  line = line.replace(RE_INTL_POST, ' $1 $2');
  line = line.replace(RE_INTL_SYM, ' $1 ');
  return pySplit(line).join(' ');
}

/** sacreBLEU's extract_all_word_ngrams: n-gram counts for n = 1..MAX_ORDER (keys joined by ' '). */
function ngrams(tokens: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (let n = 1; n <= MAX_ORDER; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join(' ');
      out.set(key, (out.get(key) ?? 0) + 1);
    }
  }
  return out;
}

/** sacreBLEU's BLEU._get_closest_ref_len: the closest length, the shorter one on a tie. */
function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let closestDiff = -1;
  let closestLen = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypLen - len);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closestLen = len;
    } else if (diff === closestDiff && len < closestLen) {
      closestLen = len;
    }
  }
  return closestLen;
}

/** sacrebleu.utils.my_log: log floored at a very negative number for 0. */
const myLog = (x: number): number => (x === 0 ? -9999999999 : Math.log(x));

/**
 * sacrebleu.corpus_bleu(hyps, refs) with sacreBLEU's defaults. `refs[k][i]` is the k-th reference of
 * sentence i (sacreBLEU's list of reference streams); `null` marks a missing reference (sacreBLEU's
 * `None`: sentences may have different numbers of references), while `''` is an empty reference of
 * length 0 (sacreBLEU ≥ 2.1 keeps those). A sentence with no reference at all throws, as sacreBLEU.
 */
export function bleu(hyps: string[], refs: ReferenceStreams, opts: BleuOptions = {}): BleuResult {
  checkStreams('bleu', hyps, refs);
  const tokenize = opts.tokenize ?? '13a';
  const tok = tokenize === '13a' ? tokenize13a : tokenize === 'intl' ? tokenizeIntl : (s: string) => s;
  if (tokenize !== '13a' && tokenize !== 'intl' && tokenize !== 'none') {
    throw new Error(`bleu: unknown tokenize '${String(tokenize)}'`);
  }
  // BLEU._preprocess_segment: optional lowercasing, then the tokenizer on the right-stripped segment
  const preprocess = (s: string): string[] => pySplit(tok(pyRstrip(opts.lowercase ? s.toLowerCase() : s)));

  const correct = new Array<number>(MAX_ORDER).fill(0);
  const total = new Array<number>(MAX_ORDER).fill(0);
  let sysLen = 0;
  let refLen = 0;
  // references are all processed first (BLEU._cache_references), so a missing one throws up front
  const refInfo = hyps.map((_, i) => sentenceRefs('bleu', refs, i).map(preprocess));
  for (let i = 0; i < hyps.length; i++) {
    const refNgrams = new Map<string, number>();
    const refLens: number[] = [];
    for (const r of refInfo[i]) {
      refLens.push(r.length);
      for (const [g, c] of ngrams(r)) refNgrams.set(g, Math.max(refNgrams.get(g) ?? 0, c));
    }
    const hyp = preprocess(hyps[i]);
    sysLen += hyp.length;
    refLen += closestRefLen(hyp.length, refLens);
    for (const [g, c] of ngrams(hyp)) {
      const n = g.split(' ').length - 1;
      total[n] += c;
      const rc = refNgrams.get(g);
      if (rc !== undefined) correct[n] += Math.min(c, rc);
    }
  }
  return computeBleu(correct, total, sysLen, refLen);
}

/** BLEU.compute_bleu with smooth_method='exp', effective_order=False, max_ngram_order=4. */
function computeBleu(correct: number[], total: number[], sysLen: number, refLen: number): BleuResult {
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(MAX_ORDER).fill(0);
  const base = { bp, sysLen, refLen, counts: correct, totals: total };
  // Early stop if there are no matches (#141)
  if (!correct.some((c) => c !== 0)) return { score: 0, precisions, ...base };
  let smoothMteval = 1;
  for (let n = 1; n <= MAX_ORDER; n++) {
    if (total[n - 1] === 0) break;
    if (correct[n - 1] === 0) {
      smoothMteval *= 2;
      precisions[n - 1] = 100 / (smoothMteval * total[n - 1]);
    } else {
      precisions[n - 1] = (100 * correct[n - 1]) / total[n - 1];
    }
  }
  let logSum = 0;
  for (const p of precisions) logSum += myLog(p);
  return { score: bp * Math.exp(logSum / MAX_ORDER), precisions, ...base };
}
