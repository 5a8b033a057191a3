// NIST (and BLEU) as mteval-v13a.pl computes them -- the mteval-v13a-sig.pl that e2e-metrics runs for
// the E2E challenge's "NIST" and "BLEU": its tokenization (ASCII lowercasing unless -c), information
// weights from all reference n-gram counts, the 5-gram cumulative score and NIST's brevity penalty.

import { checkStreams, type ReferenceStreams } from './util.js';

export interface NistOptions {
  /** Maximum n-gram order of the cumulative score (mteval prints 1..9; its "NIST score" is n = 5). */
  n?: number;
  /** mteval's `-c` (preserve case). Default false: mteval lowercases A–Z. */
  preserveCase?: boolean;
}

/** mteval computes n-gram statistics up to this order ($max_Ngram). */
const MAX_NGRAM = 9;

// Perl's \s on character strings (the SGML data is read through a :utf8 layer).
const PERL_WS = '\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const PERL_WS_RUN = new RegExp(`[${PERL_WS}]+`, 'gu');
const PERL_WS_LEAD = new RegExp(`^[${PERL_WS}]+`, 'u');
const PERL_WS_TRAIL = new RegExp(`[${PERL_WS}]+$`, 'u');

/**
 * mteval-v13a's text normalization of one segment: the SGML reader's `s/[\s\n\r]+/ /g` ("concatenate
 * records"), then sub tokenization (the default, non-international one). Returns the tokens.
 */
export function mtevalTokenize(text: string, preserveCase = false): string[] {
  let t = text.replace(PERL_WS_RUN, ' ');
  // language-independent part
  t = t.replaceAll('<skipped>', ''); // strip "skipped" tags
  t = t.replaceAll('-\n', ''); // strip end-of-line hyphenation and join lines
  t = t.replaceAll('\n', ' '); // join lines
  t = t.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  // language-dependent part (assuming Western languages)
  t = ` ${t} `;
  if (!preserveCase) t = t.replace(/[A-Z]/g, (c) => c.toLowerCase()); // tr/[A-Z]/[a-z]/
  t = t.replace(/([{-~[-`\x20-&(-+:-@/])/gu, ' $1 '); // tokenize punctuation
  t = t.replace(/([^0-9])([.,])/gu, '$1 $2 '); // tokenize period and comma unless preceded by a digit
  t = t.replace(/([.,])([^0-9])/gu, ' $1 $2'); // tokenize period and comma unless followed by a digit
  t = t.replace(/([0-9])(-)/gu, '$1 $2 '); // tokenize dash when preceded by a digit
  t = t.replace(PERL_WS_RUN, ' ').replace(PERL_WS_LEAD, '').replace(PERL_WS_TRAIL, '');
  return t === '' ? [] : t.split(' ');
}

/** mteval's Words2Ngrams: counts of every n-gram, n = 1..9, keyed by the words joined with ' '. */
function words2Ngrams(words: readonly string[]): Map<string, number> {
  const count = new Map<string, number>();
  for (let i = 0; i < words.length; i++) {
    let ngram = '';
    for (let j = 0; j < MAX_NGRAM && i + j < words.length; j++) {
      ngram = j === 0 ? words[i] : `${ngram} ${words[i + j]}`;
      count.set(ngram, (count.get(ngram) ?? 0) + 1);
    }
  }
  return count;
}

/** mteval's nist_length_penalty: 1 at ratio ≥ 1, 0.5 at ratio 1.5⁻¹, exp(−β·ln²ratio) between. */
function nistLengthPenalty(ratio: number): number {
  if (ratio >= 1) return 1;
  if (ratio <= 0) return 0;
  const ratioX = 1.5;
  const scoreX = 0.5;
  const beta = -Math.log(scoreX) / Math.log(ratioX) / Math.log(ratioX);
  return Math.exp(-beta * Math.log(ratio) * Math.log(ratio));
}

/** Corpus statistics of mteval's score_segment, summed as score_document / score_system do. */
interface MtevalStats {
  /** Information of the matched n-grams, per order (index 1..9). */
  tstInfo: number[];
  /** Clipped n-gram matches, per order. */
  match: number[];
  /** Hypothesis n-grams, per order. */
  tstCount: number[];
  /** Reference n-grams over every stream, per order. */
  refCount: number[];
  /** Σ closest reference length (brevity_penalty_closest). */
  refLength: number;
  /** Number of reference streams (mteval's scalar @ref_sys). */
  nsys: number;
}

function mtevalStats(
  metric: string,
  hyps: readonly string[],
  refs: ReferenceStreams,
  preserveCase: boolean,
): MtevalStats {
  checkStreams(metric, hyps, refs);
  // mteval visits the reference systems in `sort keys %ref_data` order: e2e-metrics names them "ref"
  // (one stream) or "ref_0", "ref_1", … -- sorted as strings ("ref_10" before "ref_2"). Only the
  // brevity length depends on it (an empty segment is skipped unless it comes first).
  const order = refs.map((_, k) => k).sort((a, b) => (`ref_${a}` < `ref_${b}` ? -1 : 1));
  const refWords = order.map((k) => refs[k].map((s) => mtevalTokenize(s ?? '', preserveCase)));

  // compute_ngram_info: info(w1..wn) = -log2(count(w1..wn) / count(w1..wn-1)), over every reference
  const ngramCount = new Map<string, number>();
  let totWords = 0;
  for (const stream of refWords) {
    for (const words of stream) {
      totWords += words.length;
      for (const [g, c] of words2Ngrams(words)) ngramCount.set(g, (ngramCount.get(g) ?? 0) + c);
    }
  }
  const info = new Map<string, number>();
  for (const [g, c] of ngramCount) {
    const cut = g.lastIndexOf(' ');
    const mgram = cut < 0 ? '' : g.slice(0, cut);
    // Perl: `$mgram ? ... : ...` -- the strings '' and '0' are both false, so a context that is the
    // single token "0" uses the unigram formula (a quirk of mteval, kept).
    const ratio = mgram !== '' && mgram !== '0' ? c / ngramCount.get(mgram)! : c / totWords;
    info.set(g, -Math.log(ratio) / Math.log(2));
  }

  // score_segment, accumulated over the corpus (score_document / score_system)
  const zeros = () => new Array<number>(MAX_NGRAM + 1).fill(0);
  const st: MtevalStats = {
    tstInfo: zeros(),
    match: zeros(),
    tstCount: zeros(),
    refCount: zeros(),
    refLength: 0,
    nsys: refs.length,
  };
  for (let i = 0; i < hyps.length; i++) {
    const tst = mtevalTokenize(hyps[i], preserveCase);
    for (let j = 1; j <= MAX_NGRAM; j++) st.tstCount[j] += j <= tst.length ? tst.length - j + 1 : 0;
    const refMax = new Map<string, number>();
    let segRefWords = 0;
    let refLength: number | undefined;
    for (const stream of refWords) {
      const words = stream[i];
      for (const [g, c] of words2Ngrams(words)) refMax.set(g, Math.max(refMax.get(g) ?? 0, c));
      for (let j = 1; j <= MAX_NGRAM; j++) st.refCount[j] += j <= words.length ? words.length - j + 1 : 0;
      segRefWords += words.length;
      refLength = refLength === undefined ? words.length : brevityPenaltyClosest(refLength, words.length, tst.length);
    }
    // mteval also scores every segment on its own (score_document) and divides by its reference
    // length in nist_score: Perl dies ("Illegal division by zero"), and so does e2e-metrics' run
    if (segRefWords === 0) {
      throw new Error(`${metric}: sentence ${i} has no reference words (mteval: Illegal division by zero)`);
    }
    st.refLength += refLength!;
    for (const [g, c] of words2Ngrams(tst)) {
      const r = refMax.get(g);
      if (r === undefined) continue;
      const n = g.split(' ').length;
      const m = Math.min(c, r);
      st.tstInfo[n] += info.get(g)! * m;
      st.match[n] += m;
    }
  }
  return st;
}

/** mteval's brevity_penalty_closest: the closest length, the shorter on a tie; empty segments skipped. */
function brevityPenaltyClosest(current: number, refLen: number, candLen: number): number {
  if (!refLen) return current;
  const dr = Math.abs(candLen - refLen);
  const dc = Math.abs(candLen - current);
  if (dr < dc) return refLen;
  if (dr === dc && current > refLen) return refLen;
  return current;
}

/**
 * Corpus NIST (mteval-v13a, as driven by e2e-metrics' measure_scores.py: all segments in one document).
 * `refs[k][i]` is the k-th reference of sentence i; a missing reference (`null`) becomes an empty
 * segment, exactly as e2e-metrics pads its mteval reference file -- and, as there, padded streams still
 * count in the average reference length (total reference words / number of streams). Every sentence
 * needs at least one reference word (mteval also scores segments alone and divides by their length).
 */
export function nist(hyps: string[], refs: ReferenceStreams, opts: NistOptions = {}): number {
  const maxN = opts.n ?? 5;
  if (!Number.isInteger(maxN) || maxN < 1 || maxN > MAX_NGRAM) throw new Error(`nist: n must be 1..${MAX_NGRAM}`);
  const st = mtevalStats('nist', hyps, refs, opts.preserveCase ?? false);
  // nist_score: Σ_n info_n / max(count_n, 1), times the length penalty of sys length / mean ref length
  const lp = nistLengthPenalty(st.tstCount[1] / (st.refCount[1] / st.nsys));
  let score = 0;
  for (let n = 1; n <= maxN; n++) score += st.tstInfo[n] / Math.max(st.tstCount[n], 1);
  return score * lp;
}

/**
 * Corpus BLEU as mteval-v13a computes it (its bleu_score, 0–1 scale): the E2E challenge's "BLEU"
 * (e2e-metrics reads it from the same mteval run as NIST). Same tokenization as `nist` (ASCII
 * lowercasing unless `preserveCase`), closest reference length with mteval's handling of empty
 * segments, and its smoothing: an order with no match counts 1/2^k, an order with no n-gram at all
 * counts log 1 = 0. Differs from sacreBLEU's `bleu(..., { lowercase: true }) / 100` on corpora with
 * no match at all, hypotheses shorter than 4 tokens, non-ASCII case, and Perl-vs-Python whitespace.
 */
export function bleuMteval(hyps: string[], refs: ReferenceStreams, opts: { preserveCase?: boolean } = {}): number {
  const st = mtevalStats('bleuMteval', hyps, refs, opts.preserveCase ?? false);
  const tst = st.tstCount;
  const expLenScore = tst[1] > 0 ? Math.exp(Math.min(0, 1 - st.refLength / tst[1])) : 0;
  let smooth = 1;
  let score = 0;
  for (let j = 1; j <= 4; j++) {
    let iscore: number;
    if (tst[j] === 0) iscore = 0;
    else if (st.match[j] === 0) {
      smooth *= 2;
      iscore = Math.log(1 / (smooth * tst[j]));
    } else iscore = Math.log(st.match[j] / tst[j]);
    score += iscore;
  }
  return Math.exp(score / 4) * expLenScore;
}
