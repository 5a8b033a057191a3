// CIDEr as pycocoevalcap computes it (pycocoevalcap/cider/cider_scorer.py, the MS-COCO caption
// evaluation's "CIDEr" that e2e-metrics reports): tf-idf n-gram vectors (n = 1..4) with document
// frequencies over the corpus references, clipped cosine similarity, Gaussian length penalty (σ = 6).

import { type ReferenceStreams, checkStreams, npMean, pySplit, sentenceRefs } from './util.js';

export interface CiderOptions {
  /** Maximum n-gram order (CiderScorer's n, default 4). */
  n?: number;
  /** Standard deviation of the length penalty (CiderScorer's sigma, default 6). */
  sigma?: number;
}

export interface CiderResult {
  /** Corpus CIDEr: the mean of the per-sentence scores. */
  score: number;
  /** Per-sentence scores (already ×10, as pycocoevalcap). */
  perSentence: number[];
}

/** precook: n-gram counts of the whitespace tokens (Python `s.split()`), in Python's insertion order. */
function precook(s: string, n: number): Map<string, number> {
  const words = pySplit(s);
  const counts = new Map<string, number>();
  for (let k = 1; k <= n; k++) {
    for (let i = 0; i + k <= words.length; i++) {
      const key = words.slice(i, i + k).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

interface Vec {
  vec: Map<string, number>[];
  norm: number[];
  length: number;
}

/**
 * CIDEr with per-sentence scores. Inputs are taken as already tokenized (pycocoevalcap splits on
 * whitespace; its COCOEvalCap wrapper runs Stanford's PTBTokenizer first -- lowercasing and dropping
 * punctuation -- which this does not do). `refs[k][i]` is the k-th reference of sentence i, `null`
 * for a missing one (an `''` reference is a real, empty one and counts); every sentence needs one.
 */
export function ciderDetailed(hyps: string[], refs: ReferenceStreams, opts: CiderOptions = {}): CiderResult {
  checkStreams('cider', hyps, refs);
  const n = opts.n ?? 4;
  const sigma = opts.sigma ?? 6;
  const crefs = hyps.map((_, i) => sentenceRefs('cider', refs, i).map((r) => precook(r, n)));
  const ctest = hyps.map((h) => precook(h, n));

  // compute_doc_freq: in how many sentences' reference sets each n-gram occurs
  const df = new Map<string, number>();
  for (const rs of crefs) {
    const seen = new Set<string>();
    for (const r of rs) for (const g of r.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const refLen = Math.log(crefs.length);

  // counts2vec: tf · (log(#sentences) − log(max(1, df))) per n-gram order, the norms, and the
  // "length" -- which pycocoevalcap counts as the number of bigrams (`if n == 1` on the 0-based order)
  const counts2vec = (cnts: Map<string, number>): Vec => {
    const vec = Array.from({ length: n }, () => new Map<string, number>());
    const norm = new Array<number>(n).fill(0);
    let length = 0;
    for (const [g, tf] of cnts) {
      const d = Math.log(Math.max(1, df.get(g) ?? 0));
      const k = g.split(' ').length - 1;
      const v = tf * (refLen - d);
      vec[k].set(g, v);
      norm[k] += v ** 2;
      if (k === 1) length += tf;
    }
    return { vec, norm: norm.map(Math.sqrt), length };
  };

  // sim: clipped cosine similarity per order, times exp(−δ² / 2σ²)
  const sim = (h: Vec, r: Vec): number[] => {
    const delta = h.length - r.length;
    const val = new Array<number>(n).fill(0);
    for (let k = 0; k < n; k++) {
      for (const [g, vh] of h.vec[k]) {
        const vr = r.vec[k].get(g) ?? 0;
        val[k] += Math.min(vh, vr) * vr;
      }
      if (h.norm[k] !== 0 && r.norm[k] !== 0) val[k] /= h.norm[k] * r.norm[k];
      val[k] *= Math.E ** (-(delta ** 2) / (2 * sigma ** 2));
    }
    return val;
  };

  const perSentence = ctest.map((test, i) => {
    const hv = counts2vec(test);
    const score = new Array<number>(n).fill(0);
    for (const ref of crefs[i]) {
      const s = sim(hv, counts2vec(ref));
      for (let k = 0; k < n; k++) score[k] += s[k];
    }
    // mean over n-gram orders, divided by the number of references, times 10
    let avg = npMean(score);
    avg /= crefs[i].length;
    avg *= 10;
    return avg;
  });
  return { score: npMean(perSentence), perSentence };
}

/** Corpus CIDEr (pycocoevalcap Cider().compute_score(gts, res)[0]); see `ciderDetailed`. */
export function cider(hyps: string[], refs: ReferenceStreams, opts: CiderOptions = {}): number {
  return ciderDetailed(hyps, refs, opts).score;
}
