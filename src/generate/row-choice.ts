// The next token of each row of a batch whose rows have their own sampling parameters and their own
// generators (continuous.ts). The ranking runs on the backend as in decoder.ts: greedy rows take the
// argmax; sampled rows their top-k candidates, on which the host applies temperature, top-p and the
// row's own seeded draw (device-sampling.ts), so a row draws exactly what `generate` alone with that seed
// draws, whatever the other rows are. Reads: the B argmax ids when every row is greedy; otherwise one
// packed read of every row's candidates and the argmax, and whole rows only for rows without a top-k
// cut-off or whose k-th candidate ties past what was read.

import { noGrad } from '../autograd/graph.js';
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { drawFromRow, drawFromSurvivors, survivors, topCandidates, topKOf } from './device-sampling.js';
import type { SamplingOptions } from './sampling.js';

/** How one row chooses: greedy unless doSample, then with its own generator. */
export interface RowSampler {
  options: SamplingOptions;
  generator: Generator | null;
}

/**
 * The chosen token of each row of scores [B, V] (f32, on the backend), and the same as an i32 [B] tensor
 * on the backend for the next step's input (the caller disposes it).
 */
export async function chooseTokens(
  scores: Tensor,
  rows: readonly RowSampler[],
): Promise<{ tokens: number[]; next: Tensor }> {
  const [b, v] = scores.shape as [number, number];
  if (rows.every((r) => !r.options.doSample)) {
    const next = noGrad(() => ops.argmax(scores)); // (B) i32
    try {
      return { tokens: Array.from((await next.data()) as Int32Array), next };
    } catch (e) {
      next.dispose();
      throw e;
    }
  }
  const ks = rows.map((r) => (r.options.doSample ? topKOf(r.options, v) : 0));
  const read = Math.min(v, Math.max(0, ...ks) + 1);
  // One read: each row's `read` candidates (values, then indices), then its argmax, all as f32.
  const packed = noGrad(() =>
    scope(() => ops.concat([topCandidates(scores, read), ops.cast(ops.reshape(ops.argmax(scores), [b, 1]), 'f32')], 1)),
  );
  let host: Float32Array;
  try {
    host = (await packed.data()) as Float32Array;
  } finally {
    packed.dispose();
  }
  const width = 2 * read + 1;
  const kept = rows.map((r, i) => {
    const k = ks[i]!;
    return r.options.doSample && k > 0
      ? survivors(host.subarray(i * width, i * width + 2 * read), 0, read, k, v)
      : null;
  });
  const whole = rows.some((r, i) => r.options.doSample && kept[i] === null)
    ? ((await scores.data()) as Float32Array)
    : null;
  const tokens = rows.map((r, i) => {
    if (!r.options.doSample) return host[i * width + 2 * read]!;
    const mine = kept[i];
    const g = r.generator!;
    return mine
      ? drawFromSurvivors(mine, r.options, g)
      : drawFromRow(whole!.subarray(i * v, (i + 1) * v), r.options, g);
  });
  return { tokens, next: tensor(Int32Array.from(tokens), { dtype: 'i32', backend: scores.backend }) };
}
