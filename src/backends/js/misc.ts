// The remaining fused kernels of the js backend: rotary embedding, dropout and the AdamW update.

import type { AdamWParams, View } from '../backend.js';
import { philoxUniform } from '../philox.js';
import { contiguousStart, floats, sizeOf } from './buffer.js';

export function rope(out: View, x: View, cos: View, sin: View, inverse: boolean): void {
  const [b, t, h, d] = x.shape as [number, number, number, number];
  if (d % 2 !== 0) throw new Error(`[js rope] Head size ${d} must be even`);
  const half = d / 2;
  const cb = cos.shape[0]!;
  for (const tab of [cos, sin]) {
    if (
      (tab.shape[0] !== 1 && tab.shape[0] !== b) ||
      tab.shape[0] !== cb ||
      tab.shape[1] !== t ||
      tab.shape[2] !== half
    ) {
      throw new Error(`[js rope] Table shape (${tab.shape.join(', ')}) does not fit x (${x.shape.join(', ')})`);
    }
  }
  const xd = floats(x, 'rope');
  const od = floats(out, 'rope');
  const cd = floats(cos, 'rope');
  const sd = floats(sin, 'rope');
  const os = contiguousStart(out, 'rope');
  const cs = contiguousStart(cos, 'rope');
  const ss = contiguousStart(sin, 'rope');
  const sign = inverse ? -1 : 1;
  const [xs0, xs1, xs2, xs3] = x.strides as [number, number, number, number];
  if (xs3 !== 1) throw new Error('[js rope] The last axis of x must be contiguous');
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      const co = ((cb === 1 ? 0 : bi) * t + ti) * half;
      for (let hi = 0; hi < h; hi++) {
        const xo = x.offset + bi * xs0 + ti * xs1 + hi * xs2;
        const oo = os + ((bi * t + ti) * h + hi) * d;
        for (let j = 0; j < half; j++) {
          const c = cd[cs + co + j]!;
          const s = sign * sd[ss + co + j]!;
          const x1 = xd[xo + j]!;
          const x2 = xd[xo + j + half]!;
          od[oo + j] = x1 * c - x2 * s;
          od[oo + j + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

export function dropout(out: View, a: View, p: number, seed: number, offset: number): void {
  if (!(p >= 0 && p < 1)) throw new Error(`[js dropout] p = ${p} must be in [0, 1)`);
  const n = sizeOf(a.shape);
  const ad = floats(a, 'dropout');
  const od = floats(out, 'dropout');
  const as = contiguousStart(a, 'dropout');
  const os = contiguousStart(out, 'dropout');
  const u = new Float64Array(n);
  philoxUniform(seed, offset, u);
  const scale = 1 / (1 - p);
  for (let i = 0; i < n; i++) od[os + i] = u[i]! >= p ? ad[as + i]! * scale : 0;
}

export function adamw(param: View, grad: View, m: View, v: View, hp: AdamWParams): void {
  const n = sizeOf(param.shape);
  const pd = floats(param, 'adamw');
  const gd = floats(grad, 'adamw');
  const md = floats(m, 'adamw');
  const vd = floats(v, 'adamw');
  const ps = contiguousStart(param, 'adamw');
  const gs = contiguousStart(grad, 'adamw');
  const ms = contiguousStart(m, 'adamw');
  const vs = contiguousStart(v, 'adamw');
  // torch.optim.AdamW (single-tensor path), in its order of operations.
  const decay = 1 - hp.lr * hp.weightDecay;
  const bc1 = 1 - hp.beta1 ** hp.step;
  const bc2Sqrt = Math.sqrt(1 - hp.beta2 ** hp.step);
  const stepSize = hp.lr / bc1;
  for (let i = 0; i < n; i++) {
    const g = gd[gs + i]!;
    pd[ps + i] = pd[ps + i]! * decay;
    md[ms + i] = md[ms + i]! + (1 - hp.beta1) * (g - md[ms + i]!);
    vd[vs + i] = vd[vs + i]! * hp.beta2 + (1 - hp.beta2) * g * g;
    const denom = Math.sqrt(vd[vs + i]!) / bc2Sqrt + hp.eps;
    pd[ps + i] = pd[ps + i]! - stepSize * (md[ms + i]! / denom);
  }
}

function scaleViews(op: string, m: View, w: View, row: View | null, col: View | null): [number, number] {
  if (m.shape.length !== 2 || w.shape.length !== 2 || m.shape[0] !== w.shape[0] || m.shape[1] !== w.shape[1])
    throw new Error(`[js ${op}] Shapes (${m.shape.join(', ')}) and (${w.shape.join(', ')}) must be one matrix shape`);
  const [o, k] = w.shape as [number, number];
  if (row && sizeOf(row.shape) !== o) throw new Error(`[js ${op}] rowScale must have ${o} elements`);
  if (col && sizeOf(col.shape) !== k) throw new Error(`[js ${op}] colScale must have ${k} elements`);
  return [o, k];
}

/** A contiguous float vector as a function of its index (ones when absent). */
function vec(v: View | null, op: string): (i: number) => number {
  if (!v) return () => 1;
  const d = floats(v, op);
  const s = contiguousStart(v, op);
  return (i) => d[s + i]!;
}

export function scaleFold(out: View, w: View, rowScale: View | null, colScale: View | null): void {
  const [o, k] = scaleViews('scaleFold', out, w, rowScale, colScale);
  const [od, wd] = [floats(out, 'scaleFold'), floats(w, 'scaleFold')];
  const [os, ws] = [contiguousStart(out, 'scaleFold'), contiguousStart(w, 'scaleFold')];
  const [r, c] = [vec(rowScale, 'scaleFold'), vec(colScale, 'scaleFold')];
  // (w · r) is an intermediate of the composite's temporary: rounded to f32 unless the views are f64.
  const held = out.dtype === 'f64' || !rowScale || !colScale ? (x: number) => x : Math.fround;
  for (let i = 0; i < o; i++) for (let j = 0; j < k; j++) od[os + i * k + j] = held(wd[ws + i * k + j]! * r(i)) * c(j);
}

export function scaleGrads(
  rowGrad: View | null,
  colGrad: View | null,
  g: View,
  w: View,
  rowScale: View | null,
  colScale: View | null,
): void {
  const [o, k] = scaleViews('scaleGrads', g, w, rowScale, colScale);
  const [gd, wd] = [floats(g, 'scaleGrads'), floats(w, 'scaleGrads')];
  const [gs, ws] = [contiguousStart(g, 'scaleGrads'), contiguousStart(w, 'scaleGrads')];
  const [r, c] = [vec(rowScale, 'scaleGrads'), vec(colScale, 'scaleGrads')];
  const held = g.dtype === 'f64' ? (x: number) => x : Math.fround;
  const rows = new Float64Array(o);
  const cols = new Float64Array(k);
  for (let i = 0; i < o; i++)
    for (let j = 0; j < k; j++) {
      const p = held(gd[gs + i * k + j]! * wd[ws + i * k + j]!);
      rows[i] += held(p * c(j));
      cols[j] += held(p * r(i));
    }
  for (const [v, sums] of [
    [rowGrad, rows],
    [colGrad, cols],
  ] as const) {
    if (!v) continue;
    const [d, s] = [floats(v, 'scaleGrads'), contiguousStart(v, 'scaleGrads')];
    sums.forEach((x, i) => (d[s + i] = x));
  }
}

export function scaleAdd(out: View, a: View, v: View, s: View): void {
  const [r, n] = scaleViews('scaleAdd', out, v, null, s);
  scaleViews('scaleAdd', a, v, null, null);
  const [od, ad, vd] = [floats(out, 'scaleAdd'), floats(a, 'scaleAdd'), floats(v, 'scaleAdd')];
  const [os, as, vs] = [out, a, v].map((x) => contiguousStart(x, 'scaleAdd')) as [number, number, number];
  const c = vec(s, 'scaleAdd');
  // v · s is an intermediate of the composite's temporary: rounded to f32 unless the views are f64.
  const held = v.dtype === 'f64' ? (x: number) => x : Math.fround;
  for (let i = 0; i < r; i++)
    for (let j = 0; j < n; j++) od[os + i * n + j] = ad[as + i * n + j]! + held(vd[vs + i * n + j]! * c(j));
}

export function scaleBackward(dv: View | null, ds: View | null, dy: View, v: View, s: View): void {
  const [r, n] = scaleViews('scaleBackward', dy, v, null, s);
  if (dv) scaleViews('scaleBackward', dv, v, null, null);
  if (ds && sizeOf(ds.shape) !== n) throw new Error(`[js scaleBackward] ds must have ${n} elements`);
  const [yd, vd] = [floats(dy, 'scaleBackward'), floats(v, 'scaleBackward')];
  const [ys, vs] = [contiguousStart(dy, 'scaleBackward'), contiguousStart(v, 'scaleBackward')];
  const c = vec(s, 'scaleBackward');
  // Each product an f32 multiply (f64 for f64 views), as the composite's temporaries hold them.
  const held = dy.dtype === 'f64' ? (x: number) => x : Math.fround;
  if (dv) {
    const [od, os] = [floats(dv, 'scaleBackward'), contiguousStart(dv, 'scaleBackward')];
    for (let i = 0; i < r * n; i++) od[os + i] = held(yd[ys + i]! * c(i % n));
  }
  if (!ds) return;
  const sums = new Float64Array(n);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) sums[j] += held(yd[ys + i * n + j]! * vd[vs + i * n + j]!);
  const [d, o] = [floats(ds, 'scaleBackward'), contiguousStart(ds, 'scaleBackward')];
  sums.forEach((x, j) => (d[o + j] = x));
}
