// Reductions: sum, mean, amax/amin over axes (with keepdim), argmax and top-k along the last axis.

import { record, recordReads } from '../autograd/graph.js';
import type { ReduceOp } from '../backends/backend.js';
import { scope } from '../tensor/scope.js';
import { normAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast, div, eq, mul } from './elementwise.js';
import { contiguous, expand, reshape } from './movement.js';
import { alias, allocLike, floatDType } from './util.js';

export interface ReduceOpts {
  /** Keep reduced axes as size 1 (torch's keepdim). */
  keepdim?: boolean;
}

function axesOf(op: string, a: Tensor, axes: number | readonly number[] | undefined): number[] {
  if (axes === undefined) return [...a.shape.keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((x) => normAxis(op, x, a.rank)))].sort((x, y) => x - y);
}

function reduceRaw(op: ReduceOp, a: Tensor, axes: number[], keepdim: boolean): Tensor {
  floatDType(op, a);
  const kept = a.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = allocLike(a, kept);
  a.backend.reduce(op, out.view(op), a.view(op), axes);
  if (keepdim) return out;
  const r = alias(
    out,
    kept.filter((_, i) => !axes.includes(i)),
  );
  out.dispose();
  return r;
}

/** Shape of a reduced result with the reduced axes restored as 1 (for broadcasting grads back). */
function keptShape(a: Tensor, axes: number[]): number[] {
  return a.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

export function sum(a: Tensor, axes?: number | readonly number[], opts: ReduceOpts = {}): Tensor {
  const ax = axesOf('sum', a, axes);
  const out = reduceRaw('sum', a, ax, opts.keepdim ?? false);
  return recordReads(
    'sum',
    out,
    [a],
    (dy) => [scope(() => contiguous(expand(reshape(dy, keptShape(a, ax)), a.shape)))],
    [],
  );
}

export function mean(a: Tensor, axes?: number | readonly number[], opts: ReduceOpts = {}): Tensor {
  const ax = axesOf('mean', a, axes);
  const count = ax.reduce((n, i) => n * a.shape[i]!, 1);
  return scope(() => div(sum(a, ax, opts), count));
}

function extreme(op: 'max' | 'min', a: Tensor, axes: number | readonly number[] | undefined, opts: ReduceOpts): Tensor {
  const ax = axesOf(op, a, axes);
  const out = reduceRaw(op, a, ax, opts.keepdim ?? false);
  // Gradient shared equally among the elements that attain the extreme (torch.amax's rule).
  return record(`a${op}`, out, [a], (dy) => [
    scope(() => {
      const m = reshape(out, keptShape(a, ax));
      const hit = cast(eq(a, m), dy.dtype);
      const count = sum(hit, ax, { keepdim: true });
      return mul(hit, div(reshape(dy, keptShape(a, ax)), count));
    }),
  ]);
}

export const amax = (a: Tensor, axes?: number | readonly number[], opts: ReduceOpts = {}): Tensor =>
  extreme('max', a, axes, opts);
export const amin = (a: Tensor, axes?: number | readonly number[], opts: ReduceOpts = {}): Tensor =>
  extreme('min', a, axes, opts);

/** Index (i32) of the first maximum along the last axis. */
export function argmax(a: Tensor): Tensor {
  floatDType('argmax', a);
  const c = contiguous(a);
  const out = allocLike(a, a.shape.slice(0, -1), 'i32');
  a.backend.argmax(out.view('argmax'), c.view('argmax'));
  if (c !== a) c.dispose();
  return out;
}

/** The k largest values along the last axis, sorted descending, and their i32 indices. */
export function topk(a: Tensor, k: number): { values: Tensor; indices: Tensor } {
  floatDType('topk', a);
  const c = contiguous(a);
  const shape = [...a.shape.slice(0, -1), k];
  const values = allocLike(a, shape);
  const indices = allocLike(a, shape, 'i32');
  a.backend.topk(values.view('topk'), indices.view('topk'), c.view('topk'), k);
  if (c !== a) c.dispose();
  return { values, indices };
}
