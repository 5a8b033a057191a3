// Choosing the next token from one row of final logits, on the host, in transformers' processor order:
// repetition penalty, then (when sampling) temperature → top-k → top-p → a seeded multinomial draw;
// greedy takes the first maximum.

import type { Generator } from '../tensor/random.js';

export interface SamplingOptions {
  /** Sample instead of taking the argmax (transformers' do_sample). Default false. */
  doSample?: boolean;
  /** Divides the logits before top-k/top-p (sampling only). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (sampling only; 0 = off). Default 50, as transformers. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (sampling only). Default 1. */
  topP?: number;
  /**
   * transformers' RepetitionPenaltyLogitsProcessor: > 1 discourages tokens already in the sequence (the
   * prompt's tokens and those generated; left padding is not counted). Default 1.
   */
  repetitionPenalty?: number;
}

/** Checks the options once; errors name the option. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (name: string, v: unknown, want: string) => {
    throw new Error(`[generate] ${name} = ${String(v)} must be ${want}`);
  };
  if (o.temperature !== undefined && !(o.temperature > 0)) bad('temperature', o.temperature, '> 0');
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', o.topK, 'an integer ≥ 0');
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad('topP', o.topP, 'in (0, 1]');
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0))
    bad('repetitionPenalty', o.repetitionPenalty, '> 0');
}

/** score < 0 ? score·penalty : score / penalty, once for each distinct token of `seen` (in place). */
export function applyRepetitionPenalty(scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t]!;
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/** Index of the first maximum. */
export function argmaxOf(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/** Temperature, top-k and top-p applied in place (filtered entries become −∞), as transformers' warpers. */
export function warp(scores: Float64Array, o: SamplingOptions): void {
  const temperature = o.temperature ?? 1;
  if (temperature !== 1) for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / temperature;
  const k = Math.min(o.topK ?? 50, scores.length);
  if (k > 0 && k < scores.length) {
    const kth = [...scores].sort((a, b) => b - a)[k - 1]!;
    for (let i = 0; i < scores.length; i++) if (scores[i]! < kth) scores[i] = -Infinity;
  }
  const p = o.topP ?? 1;
  if (p < 1) {
    const order = [...scores.keys()].sort((a, b) => scores[a]! - scores[b]!); // ascending
    const probs = softmax(order.map((i) => scores[i]!));
    let cum = 0;
    for (let j = 0; j < order.length - 1; j++) {
      cum += probs[j]!;
      if (cum <= 1 - p) scores[order[j]!] = -Infinity;
    }
  }
}

function softmax(xs: readonly number[]): number[] {
  const max = Math.max(...xs);
  const e = xs.map((x) => (x === -Infinity ? 0 : Math.exp(x - max)));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** A draw from softmax(scores) with one uniform from `g`. */
export function sampleFrom(scores: Float64Array, g: Generator): number {
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  const w = new Float64Array(scores.length);
  let total = 0;
  for (let i = 0; i < scores.length; i++) total += w[i] = scores[i] === -Infinity ? 0 : Math.exp(scores[i]! - max);
  const u = g.uniform(1, 0, 1)[0]! * total;
  let cum = 0;
  let last = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    last = i;
    cum += w[i]!;
    if (u < cum) return i;
  }
  return last;
}

/** The next token for one row of logits, given the tokens of the sequence so far. */
export function nextToken(
  logits: ArrayLike<number>,
  seen: readonly number[],
  o: SamplingOptions,
  g: Generator,
): number {
  const scores = Float64Array.from(logits);
  applyRepetitionPenalty(scores, seen, o.repetitionPenalty ?? 1);
  if (!o.doSample) return argmaxOf(scores);
  warp(scores, o);
  return sampleFrom(scores, g);
}
