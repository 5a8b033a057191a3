// Helpers shared by the metric families: Python-compatible whitespace splitting, numpy's pairwise
// summation (so means match numpy bit for bit), and the multi-reference layout (sacreBLEU's
// "reference streams") that every text metric here takes.

/**
 * The characters Python's `str.split()` / `str.isspace()` treat as whitespace. JavaScript's `\s`
 * differs: it lacks U+001C–U+001F and U+0085 and adds U+FEFF.
 */
const PY_WS = '\\t\\n\\x0B\\f\\r\\x1C-\\x1F \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const PY_WS_RUN = new RegExp(`[${PY_WS}]+`, 'u');
const PY_WS_TRAIL = new RegExp(`[${PY_WS}]+$`, 'u');

/** Python's `s.split()` (no argument): split on runs of whitespace, dropping empty fields. */
export function pySplit(s: string): string[] {
  return s.split(PY_WS_RUN).filter((t) => t.length > 0);
}

/** Python's `s.rstrip()` (no argument). */
export function pyRstrip(s: string): string {
  return s.replace(PY_WS_TRAIL, '');
}

/**
 * numpy's pairwise summation of float64 (`pairwise_sum_DOUBLE` in numpy/core/src/umath/loops_utils.h),
 * which `np.sum` / `np.mean` use on contiguous arrays: blocks of up to 128 are summed with 8
 * interleaved accumulators, larger ranges are split in two (at a multiple of 8) and recursed.
 */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    // ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), as numpy
    let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** `np.mean` of a 1-D float64 array (NaN for an empty one, as numpy returns). */
export function npMean(a: ArrayLike<number>): number {
  return pairwiseSum(a) / a.length;
}

/**
 * The multi-reference layout every text metric here takes, sacreBLEU's "reference streams":
 * `refs[k][i]` is the k-th reference of sentence i (`sacrebleu.corpus_bleu(hyps, [refs1, refs2])`).
 * A sentence with fewer references than there are streams has `null` (sacreBLEU's `None`) in the
 * streams it lacks. `''` is a reference that is empty -- sacreBLEU ≥ 2.1 scores it as a reference of
 * length 0 rather than dropping it, and the pycocoevalcap scorers count it too; only mteval (NIST)
 * treats both the same (e2e-metrics pads its mteval files with empty segments).
 */
export type ReferenceStreams = readonly (readonly (string | null | undefined)[])[];

/** Throws unless there are hypotheses and every stream has one entry per hypothesis. */
export function checkStreams(metric: string, hyps: readonly string[], refs: ReferenceStreams): void {
  if (hyps.length === 0) throw new Error(`${metric}: no hypotheses`);
  if (refs.length === 0) throw new Error(`${metric}: no reference streams given`);
  for (let k = 0; k < refs.length; k++) {
    if (refs[k].length !== hyps.length) {
      throw new Error(
        `${metric}: reference stream ${k} has ${refs[k].length} segments but there are ${hyps.length} hypotheses ` +
          `(refs[k][i] is the k-th reference of sentence i)`,
      );
    }
  }
}

/** The references of sentence i (null/undefined entries dropped); throws when it has none. */
export function sentenceRefs(metric: string, refs: ReferenceStreams, i: number): string[] {
  const out: string[] = [];
  for (const stream of refs) {
    const r = stream[i];
    if (r !== undefined && r !== null) out.push(r);
  }
  if (out.length === 0) throw new Error(`${metric}: sentence ${i} has no reference (all streams are null there)`);
  return out;
}

/**
 * Converts per-sentence reference lists (`perSentence[i]` = all references of sentence i, any number)
 * to reference streams, padding with `null`.
 */
export function toReferenceStreams(perSentence: readonly (readonly string[])[]): (string | null)[][] {
  const k = perSentence.reduce((m, r) => Math.max(m, r.length), 0);
  const out: (string | null)[][] = [];
  for (let j = 0; j < k; j++) out.push(perSentence.map((r) => r[j] ?? null));
  return out;
}
