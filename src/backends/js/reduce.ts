// Reductions of the js backend: sum/max/min over any set of axes, argmax and top-k over rows.

import type { ReduceOp, View } from '../backend.js';
import { contiguousStart, floats, ints, offsets, rowsOf, viewOffsets } from './buffer.js';

export function reduce(op: ReduceOp, out: View, a: View, axes: readonly number[]): void {
  const tag = `reduce ${op}`;
  const rank = a.shape.length;
  if (out.shape.length !== rank)
    throw new Error(`[js ${tag}] Output rank ${out.shape.length} differs from input rank ${rank}`);
  for (let d = 0; d < rank; d++) {
    const reduced = axes.includes(d);
    if ((reduced && out.shape[d] !== 1) || (!reduced && out.shape[d] !== a.shape[d])) {
      throw new Error(
        `[js ${tag}] Output shape (${out.shape.join(', ')}) does not fit input (${a.shape.join(', ')}) over axes [${axes.join(', ')}]`,
      );
    }
  }
  const od = floats(out, tag);
  const ad = floats(a, tag);
  const start = contiguousStart(out, tag);
  // Walk the input in order; each element lands at its output slot (reduced axes get stride 0).
  const outStrides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    if (!axes.includes(d)) outStrides[d] = s;
    s *= out.shape[d]!;
  }
  const dst = offsets(a.shape, outStrides, 0);
  const src = viewOffsets(a, tag);
  const acc = new Float64Array(s).fill(op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity);
  for (let i = 0; i < src.length; i++) {
    const x = ad[src[i]!]!;
    const j = dst[i]!;
    if (op === 'sum') acc[j]! += x;
    else if (Number.isNaN(x) || (op === 'max' ? x > acc[j]! : x < acc[j]!)) acc[j] = x; // NaN propagates
  }
  for (let j = 0; j < s; j++) od[start + j] = acc[j]!;
}

export function argmax(out: View, a: View): void {
  const [rows, n] = rowsOf(a);
  const ad = floats(a, 'argmax');
  const od = ints(out, 'argmax');
  const as = contiguousStart(a, 'argmax');
  const os = contiguousStart(out, 'argmax');
  if (n === 0) throw new Error('[js argmax] Empty rows have no maximum');
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bv = ad[as + r * n]!;
    for (let j = 1; j < n && !Number.isNaN(bv); j++) {
      const v = ad[as + r * n + j]!;
      if (v > bv || Number.isNaN(v)) {
        bv = v;
        best = j;
      }
    }
    od[os + r] = best;
  }
}

export function topk(values: View, indices: View, a: View, k: number): void {
  const [rows, n] = rowsOf(a);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`[js topk] k = ${k} is out of range for rows of ${n}`);
  const ad = floats(a, 'topk');
  const vd = floats(values, 'topk');
  const id = ints(indices, 'topk');
  const as = contiguousStart(a, 'topk');
  const vs = contiguousStart(values, 'topk');
  const is = contiguousStart(indices, 'topk');
  const order = new Array<number>(n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) order[j] = j;
    const row = (j: number) => ad[as + r * n + j]!;
    order.sort((x, y) => {
      const vx = row(x);
      const vy = row(y);
      if (Number.isNaN(vx) !== Number.isNaN(vy)) return Number.isNaN(vx) ? -1 : 1;
      return vx > vy ? -1 : vx < vy ? 1 : x - y;
    });
    for (let j = 0; j < k; j++) {
      vd[vs + r * k + j] = row(order[j]!);
      id[is + r * k + j] = order[j]!;
    }
  }
}
