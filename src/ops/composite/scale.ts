// Per-feature scalings folded into a weight, out = (w ⊙ rowScale ⊗ 1) ⊙ (1 ⊗ colScale) (VeRA's λ_b
// and λ_d into B), and the scalings' gradients from the gradient g of the folded weight, from
// broadcast binary products and a reduction over f32 (f64 on js) temporaries.

import type { Backend, View } from '../../backends/backend.js';
import { isContiguous, perColumn, perRow, wideDType, withScratch } from './scratch.js';

function matrix(op: string, what: string, v: View): [number, number] {
  if (v.shape.length !== 2 || !isContiguous(v))
    throw new Error(`[${op}] ${what} must be a contiguous matrix, got shape (${v.shape.join(', ')})`);
  return v.shape as [number, number];
}

function vector(op: string, what: string, v: View | null, n: number): void {
  if (v && (v.shape.length !== 1 || v.shape[0] !== n || !isContiguous(v)))
    throw new Error(`[${op}] ${what} (${v.shape.join(', ')}) must be a contiguous vector of ${n}`);
}

/** backend.scaleFold's semantics: out[o, k] = (w[o, k] · rowScale[o]) · colScale[k]. */
export function scaleFold(b: Backend, out: View, w: View, rowScale: View | null, colScale: View | null): void {
  const [o, k] = matrix('scaleFold', 'w', w);
  const [o2, k2] = matrix('scaleFold', 'out', out);
  if (o2 !== o || k2 !== k) throw new Error(`[scaleFold] out (${o2}, ${k2}) does not match w (${o}, ${k})`);
  vector('scaleFold', 'rowScale', rowScale, o);
  vector('scaleFold', 'colScale', colScale, k);
  if (!rowScale && !colScale) return b.copy(out, w);
  if (!rowScale || !colScale)
    return b.binary('mul', out, w, rowScale ? perRow(rowScale, o, k) : perColumn(colScale!, o, k));
  withScratch(b, (s) => {
    const t = s.tmp(wideDType(w), [o, k]);
    b.binary('mul', t, w, perRow(rowScale, o, k));
    b.binary('mul', out, t, perColumn(colScale, o, k));
  });
}

/**
 * backend.scaleGrads' semantics: rowGrad[o] = Σ_k (g · w)[o, k] · colScale[k] and
 * colGrad[k] = Σ_o (g · w)[o, k] · rowScale[o].
 */
export function scaleGrads(
  b: Backend,
  rowGrad: View | null,
  colGrad: View | null,
  g: View,
  w: View,
  rowScale: View | null,
  colScale: View | null,
): void {
  const [o, k] = matrix('scaleGrads', 'w', w);
  const [o2, k2] = matrix('scaleGrads', 'g', g);
  if (o2 !== o || k2 !== k) throw new Error(`[scaleGrads] g (${o2}, ${k2}) does not match w (${o}, ${k})`);
  vector('scaleGrads', 'rowScale', rowScale, o);
  vector('scaleGrads', 'colScale', colScale, k);
  vector('scaleGrads', 'rowGrad', rowGrad, o);
  vector('scaleGrads', 'colGrad', colGrad, k);
  if (!rowGrad && !colGrad) return;
  withScratch(b, (s) => {
    const dt = wideDType(g);
    const p = s.tmp(dt, [o, k]);
    b.binary('mul', p, g, w);
    const term = s.tmp(dt, [o, k]);
    for (const [grad, scale, keep] of [
      [rowGrad, colScale, 0],
      [colGrad, rowScale, 1],
    ] as const) {
      if (!grad) continue;
      let src = p;
      if (scale) {
        b.binary('mul', term, p, keep === 0 ? perColumn(scale, o, k) : perRow(scale, o, k));
        src = term;
      }
      // Reduce over the other axis into the [O] or [K] gradient, seen as [O, 1] or [1, K].
      const out: View = { ...grad, shape: keep === 0 ? [o, 1] : [1, k], strides: keep === 0 ? [1, 1] : [k, 1] };
      b.reduce('sum', out, src, [keep === 0 ? 1 : 0]);
    }
  });
}

/** backend.scaleAdd's semantics: out[i, k] = a[i, k] + v[i, k] · s[k]. */
export function scaleAdd(b: Backend, out: View, a: View, v: View, s: View): void {
  const [r, n] = matrix('scaleAdd', 'v', v);
  for (const [what, m] of [
    ['out', out],
    ['a', a],
  ] as const) {
    const [r2, n2] = matrix('scaleAdd', what, m);
    if (r2 !== r || n2 !== n) throw new Error(`[scaleAdd] ${what} (${r2}, ${n2}) does not match v (${r}, ${n})`);
  }
  vector('scaleAdd', 's', s, n);
  withScratch(b, (sc) => {
    const t = sc.tmp(wideDType(v), [r, n]);
    b.binary('mul', t, v, perColumn(s, r, n));
    b.binary('add', out, a, t);
  });
}

/** backend.scaleBackward's semantics: dv[i, k] = dy[i, k] · s[k], ds[k] = Σ_i dy[i, k] · v[i, k]. */
export function scaleBackward(b: Backend, dv: View | null, ds: View | null, dy: View, v: View, s: View): void {
  const [r, n] = matrix('scaleBackward', 'dy', dy);
  const [r2, n2] = matrix('scaleBackward', 'v', v);
  if (r2 !== r || n2 !== n) throw new Error(`[scaleBackward] v (${r2}, ${n2}) does not match dy (${r}, ${n})`);
  if (dv) {
    const [r3, n3] = matrix('scaleBackward', 'dv', dv);
    if (r3 !== r || n3 !== n) throw new Error(`[scaleBackward] dv (${r3}, ${n3}) does not match dy (${r}, ${n})`);
  }
  vector('scaleBackward', 's', s, n);
  vector('scaleBackward', 'ds', ds, n);
  if (dv) b.binary('mul', dv, dy, perColumn(s, r, n));
  if (ds) scaleGrads(b, null, ds, dy, v, null, null);
}
