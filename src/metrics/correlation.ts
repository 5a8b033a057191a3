// Correlation coefficients as scipy computes them: scipy.stats.pearsonr (statistic) and
// scipy.stats.spearmanr (statistic; average ranks for ties, NaN for constant input, as scipy).

import { npMean } from './util.js';

function checkPair(metric: string, x: readonly number[], y: readonly number[]): void {
  if (x.length !== y.length)
    throw new Error(`${metric}: x and y must have the same length (${x.length} vs ${y.length})`);
}

const isConstant = (a: readonly number[]): boolean => a.every((v) => v === a[0]);

/** Euclidean norm (scipy.linalg.norm / BLAS nrm2 for a vector), scaled so it cannot overflow. */
function norm2(a: readonly number[]): number {
  let scale = 0;
  for (const v of a) scale = Math.max(scale, Math.abs(v));
  if (scale === 0 || !Number.isFinite(scale)) return scale === 0 ? 0 : NaN;
  let ss = 0;
  for (const v of a) {
    const t = v / scale;
    ss += t * t;
  }
  return scale * Math.sqrt(ss);
}

/**
 * scipy.stats.pearsonr(x, y).statistic, following scipy's steps: fewer than 2 points throws (scipy's
 * ValueError); a constant input gives NaN (ConstantInputWarning); n = 2 gives
 * sign(x1 − x0)·sign(y1 − y0); otherwise r = (xm/‖xm‖)·(ym/‖ym‖) with xm = x − mean(x) (numpy's
 * pairwise mean), clipped to [−1, 1]. NaN in the input gives NaN (scipy 1.18; scipy 1.10 raised).
 */
export function pearson(x: number[], y: number[]): number {
  checkPair('pearson', x, y);
  const n = x.length;
  if (n < 2) throw new Error('pearson: x and y must have length at least 2');
  if (isConstant(x) || isConstant(y)) return NaN;
  if (n === 2) return Math.sign(x[1] - x[0]) * Math.sign(y[1] - y[0]);
  const xMean = npMean(x);
  const yMean = npMean(y);
  const xm = x.map((v) => v - xMean);
  const ym = y.map((v) => v - yMean);
  const nx = norm2(xm);
  const ny = norm2(ym);
  let r = 0;
  for (let i = 0; i < n; i++) r += (xm[i] / nx) * (ym[i] / ny);
  // scipy: max(min(r, 1.0), -1.0) -- Python's min/max keep a NaN first argument
  return Number.isNaN(r) ? NaN : Math.max(Math.min(r, 1), -1);
}

/**
 * scipy.stats.rankdata(a, method='average'): 1-based ranks, ties get the mean of the ranks they span.
 */
export function rankAverage(a: readonly number[]): number[] {
  const order = a.map((_, i) => i).sort((i, j) => a[i] - a[j] || i - j);
  const ranks = new Array<number>(a.length);
  let i = 0;
  while (i < order.length) {
    let j = i + 1;
    while (j < order.length && a[order[j]] === a[order[i]]) j++;
    const r = 0.5 * (i + j + 1); // scipy: .5 * (count[dense] + count[dense - 1] + 1)
    for (let k = i; k < j; k++) ranks[order[k]] = r;
    i = j;
  }
  return ranks;
}

/**
 * scipy.stats.spearmanr(x, y).statistic: NaN for fewer than 2 points, a constant input, or any NaN
 * (nan_policy='propagate'); otherwise np.corrcoef of the average ranks (cov · 1/(n−1), divided by
 * each standard deviation in turn, clipped to [−1, 1]).
 */
export function spearman(x: number[], y: number[]): number {
  checkPair('spearman', x, y);
  const n = x.length;
  if (n <= 1) return NaN;
  if (isConstant(x) || isConstant(y)) return NaN;
  if (x.some(Number.isNaN) || y.some(Number.isNaN)) return NaN;
  const rx = rankAverage(x);
  const ry = rankAverage(y);
  const mx = npMean(rx);
  const my = npMean(ry);
  let cxy = 0;
  let cxx = 0;
  let cyy = 0;
  for (let i = 0; i < n; i++) {
    const dx = rx[i] - mx;
    const dy = ry[i] - my;
    cxy += dy * dx;
    cxx += dx * dx;
    cyy += dy * dy;
  }
  const f = 1 / (n - 1);
  // np.corrcoef: c[1, 0] /= stddev[1]; c[1, 0] /= stddev[0]
  const r = (cxy * f) / Math.sqrt(cyy * f) / Math.sqrt(cxx * f);
  return Math.max(Math.min(r, 1), -1);
}
