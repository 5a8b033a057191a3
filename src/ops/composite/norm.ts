// LayerNorm and RMSNorm over the last axis, forward and backward, from primitives. Same statistics as
// the fused kernels (biased variance; mean and rstd saved per row) and the same backward formulas:
//   LayerNorm: dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)),  RMSNorm: dx = rstd·(dŷ − x̂·mean(dŷ·x̂)),
// with x̂ the normalised input and dŷ = dy·w; dw += Σ_rows dy·x̂ and db += Σ_rows dy.

import type { Backend, View } from '../../backends/backend.js';
import { type Scratch, perColumn, perRow, reshaped, rowsOf, withScratch } from './scratch.js';

/** Writes mean over the last axis of x [R, C] into out [R, 1]. */
function rowMean(b: Backend, out: View, x: View, c: number): void {
  b.reduce('sum', out, x, [1]);
  b.scalar('mul_s', out, out, 1 / c);
}

/** rstd [R, 1] = 1/√(mean(sq) + eps), sq [R, C] holding the squared (centred) values. */
function rstdOf(b: Backend, rstd: View, sq: View, c: number, eps: number): void {
  rowMean(b, rstd, sq, c);
  b.scalar('add_s', rstd, rstd, eps);
  b.unary('rsqrt', rstd, rstd);
}

/** out = y·w + bias in place over [R, C], either of w and bias possibly absent. */
function affine(b: Backend, op: string, y: View, w: View | null, bias: View | null, r: number, c: number): void {
  if (w) b.binary('mul', y, y, perColumn(reshaped(op, 'weight', w, [c]), r, c));
  if (bias) b.binary('add', y, y, perColumn(reshaped(op, 'bias', bias, [c]), r, c));
}

/** dŷ = dy·w (a temporary), or dy itself when there is no weight. */
function scaledGrad(s: Scratch, op: string, dy: View, w: View | null, r: number, c: number): View {
  if (!w) return dy;
  const g = s.tmp(dy.dtype, [r, c]);
  s.backend.binary('mul', g, dy, perColumn(reshaped(op, 'weight', w, [c]), r, c));
  return g;
}

/** acc [C] += Σ_rows t [R, C]. */
function accumulateColumns(s: Scratch, op: string, what: string, acc: View, t: View, c: number): void {
  const b = s.backend;
  const sum = s.tmp(t.dtype, [1, c]);
  b.reduce('sum', sum, t, [0]);
  const a = reshaped(op, what, acc, [1, c]);
  b.binary('add', a, a, sum);
}

/** backend.layerNorm's semantics. */
export function layerNorm(
  b: Backend,
  out: View,
  mean: View,
  rstd: View,
  x: View,
  w: View | null,
  bias: View | null,
  eps: number,
): void {
  const op = 'layerNorm';
  const [r, c] = rowsOf(x);
  const xv = reshaped(op, 'input', x, [r, c]);
  const y = reshaped(op, 'output', out, [r, c]);
  const mu = reshaped(op, 'mean', mean, [r, 1]);
  const rs = reshaped(op, 'rstd', rstd, [r, 1]);
  withScratch(b, (s) => {
    rowMean(b, mu, xv, c);
    b.binary('sub', y, xv, perRow(mu, r, c)); // x − mean
    const sq = s.tmp(x.dtype, [r, c]);
    b.unary('square', sq, y);
    rstdOf(b, rs, sq, c, eps);
    b.binary('mul', y, y, perRow(rs, r, c));
    affine(b, op, y, w, bias, r, c);
  });
}

/** backend.layerNormBackward's semantics: dx overwritten, dw and db accumulated, each when not null. */
export function layerNormBackward(
  b: Backend,
  dx: View | null,
  dw: View | null,
  db: View | null,
  dy: View,
  x: View,
  w: View | null,
  mean: View,
  rstd: View,
): void {
  const op = 'layerNormBackward';
  const [r, c] = rowsOf(x);
  const xv = reshaped(op, 'x', x, [r, c]);
  const gv = reshaped(op, 'dy', dy, [r, c]);
  const mu = perRow(reshaped(op, 'mean', mean, [r, 1]), r, c);
  const rs = perRow(reshaped(op, 'rstd', rstd, [r, 1]), r, c);
  withScratch(b, (s) => {
    const xhat = s.tmp(x.dtype, [r, c]);
    b.binary('sub', xhat, xv, mu);
    b.binary('mul', xhat, xhat, rs);
    const t = s.tmp(x.dtype, [r, c]);
    if (dw) {
      b.binary('mul', t, gv, xhat);
      accumulateColumns(s, op, 'dw', dw, t, c);
    }
    if (db) accumulateColumns(s, op, 'db', db, gv, c);
    if (!dx) return;
    const out = reshaped(op, 'dx', dx, [r, c]);
    const g = scaledGrad(s, op, gv, w, r, c);
    const meanG = s.tmp(x.dtype, [r, 1]);
    const meanGX = s.tmp(x.dtype, [r, 1]);
    rowMean(b, meanG, g, c);
    b.binary('mul', t, g, xhat);
    rowMean(b, meanGX, t, c);
    b.binary('mul', out, xhat, perRow(meanGX, r, c));
    b.binary('sub', out, g, out);
    b.binary('sub', out, out, perRow(meanG, r, c));
    b.binary('mul', out, out, rs);
  });
}

/** backend.rmsNorm's semantics. */
export function rmsNorm(b: Backend, out: View, rstd: View, x: View, w: View | null, eps: number): void {
  const op = 'rmsNorm';
  const [r, c] = rowsOf(x);
  const xv = reshaped(op, 'input', x, [r, c]);
  const y = reshaped(op, 'output', out, [r, c]);
  const rs = reshaped(op, 'rstd', rstd, [r, 1]);
  withScratch(b, (s) => {
    const sq = s.tmp(x.dtype, [r, c]);
    b.unary('square', sq, xv);
    rstdOf(b, rs, sq, c, eps);
    b.binary('mul', y, xv, perRow(rs, r, c));
    affine(b, op, y, w, null, r, c);
  });
}

/** backend.rmsNormBackward's semantics: dx overwritten, dw accumulated, each when not null. */
export function rmsNormBackward(
  b: Backend,
  dx: View | null,
  dw: View | null,
  dy: View,
  x: View,
  w: View | null,
  rstd: View,
): void {
  const op = 'rmsNormBackward';
  const [r, c] = rowsOf(x);
  const xv = reshaped(op, 'x', x, [r, c]);
  const gv = reshaped(op, 'dy', dy, [r, c]);
  const rs = perRow(reshaped(op, 'rstd', rstd, [r, 1]), r, c);
  withScratch(b, (s) => {
    const xhat = s.tmp(x.dtype, [r, c]);
    b.binary('mul', xhat, xv, rs);
    const t = s.tmp(x.dtype, [r, c]);
    if (dw) {
      b.binary('mul', t, gv, xhat);
      accumulateColumns(s, op, 'dw', dw, t, c);
    }
    if (!dx) return;
    const out = reshaped(op, 'dx', dx, [r, c]);
    const g = scaledGrad(s, op, gv, w, r, c);
    const meanGX = s.tmp(x.dtype, [r, 1]);
    b.binary('mul', t, g, xhat);
    rowMean(b, meanGX, t, c);
    b.binary('mul', out, xhat, perRow(meanGX, r, c));
    b.binary('sub', out, g, out);
    b.binary('mul', out, out, rs);
  });
}
