// Movement ops: views that share storage (reshape when strides allow, permute/transpose, expand,
// slice, squeeze/unsqueeze) and the copies behind contiguous/concat/gather. Every view op records a
// gradient that maps dy back to the input's layout.

import { record, recordMulti, recordReads } from '../autograd/graph.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import {
  broadcastStrides,
  checkShape,
  contiguousStrides,
  normAxis,
  reshapeStrides,
  shapesEqual,
} from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Backend } from '../backends/backend.js';
import { alias, alloc, allocLike, expectDType, floatDType, sameBackend, sumToShape } from './util.js';

/** A contiguous copy of `a`, or `a` itself when already contiguous. */
export function contiguous(a: Tensor): Tensor {
  if (a.isContiguous) return a;
  const out = allocLike(a);
  a.backend.copy(out.view('contiguous'), a.view('contiguous'));
  return recordReads('contiguous', out, [a], (dy) => [dy], []);
}

/** Reshapes (one dim may be −1); a view when the layout allows, else a copy (torch.reshape). */
export function reshape(a: Tensor, shape: readonly number[]): Tensor {
  const r = reshapeStrides(a.shape, a.strides, shape);
  if (r.strides === null) {
    const c = contiguous(a);
    const out = reshape(c, r.shape);
    if (c !== a) c.dispose();
    return out;
  }
  const out = alias(a, r.shape, r.strides, a.offset);
  return recordReads('reshape', out, [a], (dy) => [reshape(dy, a.shape)], []);
}

export function flatten(a: Tensor, start = 0, end = -1): Tensor {
  const s = normAxis('flatten', start, a.rank);
  const e = normAxis('flatten', end, a.rank);
  const mid = a.shape.slice(s, e + 1).reduce((x, y) => x * y, 1);
  return reshape(a, [...a.shape.slice(0, s), mid, ...a.shape.slice(e + 1)]);
}

export function unsqueeze(a: Tensor, axis: number): Tensor {
  const ax = normAxis('unsqueeze', axis, a.rank + 1);
  return reshape(a, [...a.shape.slice(0, ax), 1, ...a.shape.slice(ax)]);
}

/** Removes size-1 axes (all of them, or the one named). */
export function squeeze(a: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      a,
      a.shape.filter((d) => d !== 1),
    );
  const ax = normAxis('squeeze', axis, a.rank);
  if (a.shape[ax] !== 1) return a;
  return reshape(
    a,
    a.shape.filter((_, i) => i !== ax),
  );
}

/** Reorders axes: out.shape[i] = a.shape[dims[i]] (a view). */
export function permute(a: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((x) => normAxis('permute', x, a.rank));
  if (d.length !== a.rank || new Set(d).size !== d.length) {
    throw new ShapeError(`[permute] Dims [${dims.join(', ')}] are not a permutation of ${a.rank} axes`);
  }
  const out = alias(
    a,
    d.map((i) => a.shape[i]!),
    d.map((i) => a.strides[i]!),
    a.offset,
  );
  const inverse = new Array<number>(d.length);
  d.forEach((src, i) => (inverse[src] = i));
  return recordReads('permute', out, [a], (dy) => [permute(dy, inverse)], []);
}

export function transpose(a: Tensor, d0 = -2, d1 = -1): Tensor {
  const dims = [...a.shape.keys()];
  const x = normAxis('transpose', d0, a.rank);
  const y = normAxis('transpose', d1, a.rank);
  [dims[x], dims[y]] = [dims[y]!, dims[x]!];
  return permute(a, dims);
}

/** Broadcasts to `shape` without copying (stride 0 on expanded axes; −1 keeps a size). */
export function expand(a: Tensor, shape: readonly number[]): Tensor {
  const target = shape.map((s, i) => (s === -1 ? a.shape[i - (shape.length - a.rank)]! : s));
  checkShape('expand', target);
  if (shapesEqual(target, a.shape)) return a;
  const out = alias(a, target, broadcastStrides('expand', a.shape, a.strides, target), a.offset);
  return recordReads('expand', out, [a], (dy) => [sumToShape(dy, a.shape)], []);
}

/** Elements start, start+step, … < end along `axis` (negative start/end count from the end). */
export function slice(a: Tensor, axis: number, start: number, end = Infinity, step = 1): Tensor {
  const ax = normAxis('slice', axis, a.rank);
  const n = a.shape[ax]!;
  if (!Number.isInteger(step) || step < 1) throw new ShapeError(`[slice] Step must be a positive integer, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = Math.max(s, clampIdx(end));
  const len = Math.ceil((e - s) / step);
  const shape = a.shape.map((d, i) => (i === ax ? len : d));
  const strides = a.strides.map((st, i) => (i === ax ? st * step : st));
  const out = alias(a, shape, strides, a.offset + s * a.strides[ax]!);
  return recordReads(
    'slice',
    out,
    [a],
    (dy) => [
      scope(() => {
        const g = allocLike(dy, a.shape);
        a.backend.fill(g.view('slice'), 0);
        const gs = g.strides.map((st, i) => (i === ax ? st * step : st));
        a.backend.copy({ ...g.view('slice'), shape, strides: gs, offset: s * g.strides[ax]! }, dy.view('slice'));
        return g;
      }),
    ],
    [],
  );
}

/** Joins tensors along an axis (all other sizes equal). */
export function concat(ts: readonly Tensor[], axis = 0): Tensor {
  if (ts.length === 0) throw new ShapeError('[concat] Needs at least one tensor');
  const first = ts[0]!;
  const ax = normAxis('concat', axis, first.rank);
  const backend = sameBackend('concat', ...ts);
  for (const t of ts) {
    if (t.dtype !== first.dtype) throw new ShapeError(`[concat] Dtypes differ: ${first.dtype} and ${t.dtype}`);
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError(
        `[concat] Shapes ${fmtShape(first.shape)} and ${fmtShape(t.shape)} differ outside axis ${ax}`,
      );
    }
  }
  const sizes = ts.map((t) => t.shape[ax]!);
  const shape = first.shape.map((d, i) => (i === ax ? sizes.reduce((x, y) => x + y, 0) : d));
  const out = allocLike(first, shape);
  const strides = contiguousStrides(shape);
  let at = 0;
  for (const t of ts) {
    backend.copy({ ...out.view('concat'), shape: t.shape, strides, offset: at * strides[ax]! }, t.view('concat'));
    at += t.shape[ax]!;
  }
  return record('concat', out, ts, (dy, needs) => {
    let start = 0;
    return ts.map((_, i) => {
      const s = start;
      start += sizes[i]!;
      return needs[i] ? contiguousSlice(dy, ax, s, s + sizes[i]!) : null;
    });
  });
}

function contiguousSlice(a: Tensor, axis: number, start: number, end: number): Tensor {
  const v = slice(a, axis, start, end);
  const c = contiguous(v);
  if (c !== v) v.dispose();
  return c;
}

/**
 * Splits along an axis into pieces of the given sizes: views, recorded as one op whose backward
 * writes every piece's gradient into a single buffer (no zero-filled buffer per piece, no sums).
 */
export function split(a: Tensor, sizes: readonly number[], axis = 0): Tensor[] {
  const ax = normAxis('split', axis, a.rank);
  if (sizes.reduce((x, y) => x + y, 0) !== a.shape[ax] || sizes.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ShapeError(
      `[split] Sizes [${sizes.join(', ')}] do not add up to ${a.shape[ax]} along axis ${ax} of ${fmtShape(a.shape)}`,
    );
  }
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((x, y) => x + y, 0));
  const pieceShape = (n: number) => a.shape.map((d, i) => (i === ax ? n : d));
  const outs = sizes.map((n, i) => alias(a, pieceShape(n), a.strides, a.offset + starts[i]! * a.strides[ax]!));
  recordMulti('split', outs, [a], (dys) => {
    const g = allocLike(
      dys.find((d) => d !== null)!,
      a.shape,
    );
    const gv = g.view('split');
    const zero = dys.includes(null) ? alloc(a.backend, [], g.dtype) : null;
    if (zero) a.backend.fill(zero.view('split'), 0);
    dys.forEach((dy, i) => {
      const shape = pieceShape(sizes[i]!);
      const region = { ...gv, shape, offset: starts[i]! * g.strides[ax]! };
      const src = dy ? dy.view('split') : { ...zero!.view('split'), shape, strides: shape.map(() => 0) };
      a.backend.copy(region, src);
    });
    zero?.dispose();
    return [g];
  });
  return outs;
}

/** torch.gather: out[…i…] = a[… index[…i…] along axis …]; index is i32 of a's rank. */
export function gather(a: Tensor, axis: number, index: Tensor): Tensor {
  floatDType('gather', a);
  expectDType('gather', index, 'i32', 'Index');
  const ax = normAxis('gather', axis, a.rank);
  const backend = sameBackend('gather', a, index);
  const ac = contiguous(a);
  const ic = contiguous(index);
  const out = allocLike(a, index.shape);
  backend.gather(out.view('gather'), ac.view('gather'), ic.view('gather'), ax);
  if (ac !== a) ac.dispose();
  return record(
    'gather',
    out,
    [a],
    (dy) => [
      scope(() => {
        const g = allocLike(dy, a.shape);
        backend.fill(g.view('gather'), 0);
        const dyc = contiguous(dy);
        backend.scatterAdd(g.view('gather'), ic.view('gather'), dyc.view('gather'), ax);
        return g;
      }),
    ],
    ic === index ? [] : [ic],
    ic === index ? [index] : [],
  );
}

/** A copy of `a` on another backend (through host memory); gradients flow back to `a`'s backend. */
export function toBackend(a: Tensor, backend: Backend): Tensor {
  if (a.backend === backend) return a;
  const out = alloc(backend, a.shape, a.dtype);
  backend.upload(out.storage.buffer('toBackend'), a.dtype, 0, a.toArray());
  return record('toBackend', out, [a], (dy) => [toBackend(dy, a.backend)]);
}
