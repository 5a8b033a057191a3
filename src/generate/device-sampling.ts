// Choosing the next token with the ranking done on the backend, so that a decoding step reads back only
// what the host must see. Greedy: the repetition penalty and the argmax run there, and B ids are read.
// Sampling: the penalty and top-k run there, and each row's candidates (the k best and the next one, to
// see ties with the k-th) are read; on them the host applies temperature, top-p and the seeded draw in
// float64, giving the token nextToken (sampling.ts) gives on the whole row: every token outside the
// candidates is one top-k filters out, and a filtered token adds exact zeros to every sum there.

import { full } from '../tensor/creation.js';
import type { HostArray } from '../backends/dtype.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { Generator } from '../tensor/random.js';
import { type SamplingOptions, sampleFrom, warp } from './sampling.js';

/**
 * transformers' repetition penalty on scores [B, V] (f32): where seen [B, V] (counts of the tokens in each
 * row's sequence) is > 0, s < 0 ? s·penalty : s / penalty. The products round to f32 here where the host
 * version rounds to float64, so a score that ties another only after f32 rounding can rank differently.
 */
export function penalize(scores: Tensor, seen: Tensor, penalty: number): Tensor {
  return scope(() => {
    const p = full([], penalty, { backend: scores.backend });
    const penalized = ops.where(ops.lt(scores, 0), ops.mulScalar(scores, penalty), ops.div(scores, p));
    return ops.where(ops.gt(seen, 0), penalized, scores);
  });
}

/** Candidates are packed as f32 values then f32 indices, exact for indices below 2^24. */
export const MAX_SAMPLED_VOCAB = 2 ** 24;

/** The k largest of each row of scores [B, V] and their indices, packed into one f32 [B, 2k] tensor (one read). */
export function topCandidates(scores: Tensor, k: number): Tensor {
  const v = scores.shape[1]!;
  if (v > MAX_SAMPLED_VOCAB)
    throw new RangeError(`[generate] Sampling packs token ids in f32: a vocabulary of ${v} exceeds 2^24`);
  return scope(() => {
    const { values, indices } = ops.topk(scores, k);
    return ops.concat([values, ops.cast(indices, 'f32')], 1);
  });
}

/** The top-k cut-off of `o` for a vocabulary of v tokens: 0 (none) or k in [1, v). */
export function topKOf(o: SamplingOptions, v: number): number {
  const k = Math.min(o.topK ?? 50, v);
  return k > 0 && k < v ? k : 0;
}

/**
 * Row r's tokens that survive top-k (value ≥ the k-th, ties kept as transformers keeps them) from the
 * packed candidates [B, 2·read] of topCandidates, in index order; null when the read candidates end in a
 * tie with the k-th value, so more tokens may survive than were read.
 */
export function survivors(
  packed: HostArray,
  r: number,
  read: number,
  k: number,
  vocab: number,
): { index: number; score: number }[] | null {
  const values = (packed as Float32Array).subarray(2 * read * r, 2 * read * r + read);
  const indices = (packed as Float32Array).subarray(2 * read * r + read, 2 * read * (r + 1));
  const kth = values[k - 1]!;
  let n = k;
  while (n < read && values[n] === kth) n++;
  if (n === read && read < vocab) return null;
  return Array.from({ length: n }, (_, i) => ({ index: indices[i]!, score: values[i]! })).sort(
    (a, b) => a.index - b.index,
  );
}

/**
 * The draw nextToken makes on a whole row, from its top-k survivors (index order): temperature, top-p and
 * one uniform from g, in float64 as sampling.ts computes them.
 */
export function drawFromSurvivors(
  kept: readonly { index: number; score: number }[],
  o: SamplingOptions,
  g: Generator,
): number {
  const scores = Float64Array.from(kept, (c) => c.score);
  warp(scores, { ...o, topK: 0 }); // top-k is done: temperature and top-p
  return kept[sampleFrom(scores, g)]!.index;
}

/** The draw nextToken makes on a whole row of (already penalized) scores. */
export function drawFromRow(row: ArrayLike<number>, o: SamplingOptions, g: Generator): number {
  const scores = Float64Array.from(row);
  warp(scores, o);
  return sampleFrom(scores, g);
}
