// Row-wise kernels of the js backend: softmax / log-softmax, LayerNorm and RMSNorm, each with its
// backward. Rows are the last axis of contiguous views; statistics are float64.

import type { View } from '../backend.js';
import type { FloatArray } from '../dtype.js';
import { contiguousStart, floats, rowsOf } from './buffer.js';

interface Rows {
  data: FloatArray;
  start: number;
}

function rows(v: View, op: string): Rows {
  return { data: floats(v, op), start: contiguousStart(v, op) };
}

function optRows(v: View | null, op: string): Rows | null {
  return v ? rows(v, op) : null;
}

export function softmax(out: View, a: View, log: boolean): void {
  const [r, n] = rowsOf(a);
  const x = rows(a, 'softmax');
  const y = rows(out, 'softmax');
  for (let i = 0; i < r; i++) {
    const xo = x.start + i * n;
    const yo = y.start + i * n;
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, x.data[xo + j]!);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += Math.exp(x.data[xo + j]! - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < n; j++) {
      y.data[yo + j] = log ? x.data[xo + j]! - lse : Math.exp(x.data[xo + j]! - lse);
    }
  }
}

export function softmaxBackward(dx: View, yv: View, dyv: View, log: boolean): void {
  const [r, n] = rowsOf(yv);
  const y = rows(yv, 'softmaxBackward');
  const dy = rows(dyv, 'softmaxBackward');
  const g = rows(dx, 'softmaxBackward');
  for (let i = 0; i < r; i++) {
    const o = i * n;
    let s = 0;
    for (let j = 0; j < n; j++)
      s += log ? dy.data[dy.start + o + j]! : dy.data[dy.start + o + j]! * y.data[y.start + o + j]!;
    for (let j = 0; j < n; j++) {
      const yj = y.data[y.start + o + j]!;
      const dyj = dy.data[dy.start + o + j]!;
      g.data[g.start + o + j] = log ? dyj - Math.exp(yj) * s : yj * (dyj - s);
    }
  }
}

export function layerNorm(
  out: View,
  mean: View,
  rstd: View,
  xv: View,
  w: View | null,
  b: View | null,
  eps: number,
): void {
  const [r, c] = rowsOf(xv);
  const x = rows(xv, 'layerNorm');
  const y = rows(out, 'layerNorm');
  const mu = rows(mean, 'layerNorm');
  const rs = rows(rstd, 'layerNorm');
  const wr = optRows(w, 'layerNorm');
  const br = optRows(b, 'layerNorm');
  for (let i = 0; i < r; i++) {
    const xo = x.start + i * c;
    let m = 0;
    for (let j = 0; j < c; j++) m += x.data[xo + j]!;
    m /= c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x.data[xo + j]! - m) ** 2;
    v /= c;
    const s = 1 / Math.sqrt(v + eps);
    mu.data[mu.start + i] = m;
    rs.data[rs.start + i] = s;
    for (let j = 0; j < c; j++) {
      let o = (x.data[xo + j]! - m) * s;
      if (wr) o *= wr.data[wr.start + j]!;
      if (br) o += br.data[br.start + j]!;
      y.data[y.start + i * c + j] = o;
    }
  }
}

export function layerNormBackward(
  dx: View | null,
  dw: View | null,
  db: View | null,
  dyv: View,
  xv: View,
  w: View | null,
  mean: View,
  rstd: View,
): void {
  const [r, c] = rowsOf(xv);
  const x = rows(xv, 'layerNormBackward');
  const dy = rows(dyv, 'layerNormBackward');
  const mu = rows(mean, 'layerNormBackward');
  const rs = rows(rstd, 'layerNormBackward');
  const wr = optRows(w, 'layerNormBackward');
  const g = optRows(dx, 'layerNormBackward');
  const gw = optRows(dw, 'layerNormBackward');
  const gb = optRows(db, 'layerNormBackward');
  const wAt = (j: number) => (wr ? wr.data[wr.start + j]! : 1);
  for (let i = 0; i < r; i++) {
    const m = mu.data[mu.start + i]!;
    const s = rs.data[rs.start + i]!;
    const xo = x.start + i * c;
    const go = dy.start + i * c;
    let meanG = 0;
    let meanGX = 0;
    for (let j = 0; j < c; j++) {
      const xhat = (x.data[xo + j]! - m) * s;
      const dxhat = dy.data[go + j]! * wAt(j);
      meanG += dxhat;
      meanGX += dxhat * xhat;
      if (gw) gw.data[gw.start + j]! += dy.data[go + j]! * xhat;
      if (gb) gb.data[gb.start + j]! += dy.data[go + j]!;
    }
    meanG /= c;
    meanGX /= c;
    if (!g) continue;
    for (let j = 0; j < c; j++) {
      const xhat = (x.data[xo + j]! - m) * s;
      g.data[g.start + i * c + j] = s * (dy.data[go + j]! * wAt(j) - meanG - xhat * meanGX);
    }
  }
}

export function rmsNorm(out: View, rstd: View, xv: View, w: View | null, eps: number): void {
  const [r, c] = rowsOf(xv);
  const x = rows(xv, 'rmsNorm');
  const y = rows(out, 'rmsNorm');
  const rs = rows(rstd, 'rmsNorm');
  const wr = optRows(w, 'rmsNorm');
  for (let i = 0; i < r; i++) {
    const xo = x.start + i * c;
    let ms = 0;
    for (let j = 0; j < c; j++) ms += x.data[xo + j]! ** 2;
    const s = 1 / Math.sqrt(ms / c + eps);
    rs.data[rs.start + i] = s;
    for (let j = 0; j < c; j++) {
      y.data[y.start + i * c + j] = x.data[xo + j]! * s * (wr ? wr.data[wr.start + j]! : 1);
    }
  }
}

export function rmsNormBackward(
  dx: View | null,
  dw: View | null,
  dyv: View,
  xv: View,
  w: View | null,
  rstd: View,
): void {
  const [r, c] = rowsOf(xv);
  const x = rows(xv, 'rmsNormBackward');
  const dy = rows(dyv, 'rmsNormBackward');
  const rs = rows(rstd, 'rmsNormBackward');
  const wr = optRows(w, 'rmsNormBackward');
  const g = optRows(dx, 'rmsNormBackward');
  const gw = optRows(dw, 'rmsNormBackward');
  const wAt = (j: number) => (wr ? wr.data[wr.start + j]! : 1);
  for (let i = 0; i < r; i++) {
    const s = rs.data[rs.start + i]!;
    const xo = x.start + i * c;
    const go = dy.start + i * c;
    let meanGX = 0;
    for (let j = 0; j < c; j++) {
      const xhat = x.data[xo + j]! * s;
      meanGX += dy.data[go + j]! * wAt(j) * xhat;
      if (gw) gw.data[gw.start + j]! += dy.data[go + j]! * xhat;
    }
    meanGX /= c;
    if (!g) continue;
    for (let j = 0; j < c; j++) {
      const xhat = x.data[xo + j]! * s;
      g.data[g.start + i * c + j] = s * (dy.data[go + j]! * wAt(j) - xhat * meanGX);
    }
  }
}
