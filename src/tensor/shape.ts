// Shape and stride arithmetic shared by the tensor front end and the backends.
// Strides and offsets are counted in elements, row-major; a stride of 0 marks a broadcast dimension.

import { ShapeError, fmtShape } from './errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** True when a view with these strides covers its elements densely in row-major order. */
export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (d !== 1 && strides[i] !== s) return false;
    s *= d;
  }
  return true;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** numpy/torch broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`[${op}] Shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that view (shape, strides) as broadcast to `target` (stride 0 on expanded dims). */
export function broadcastStrides(op: string, shape: Shape, strides: readonly number[], target: Shape): number[] {
  const off = target.length - shape.length;
  if (off < 0) throw new ShapeError(`[${op}] Cannot broadcast ${fmtShape(shape)} to ${fmtShape(target)}`);
  const out = new Array<number>(target.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    const t = target[off + i]!;
    if (d === t) out[off + i] = strides[i]!;
    else if (d === 1) out[off + i] = 0;
    else throw new ShapeError(`[${op}] Cannot broadcast ${fmtShape(shape)} to ${fmtShape(target)}`);
  }
  return out;
}

/** Normalises a possibly negative axis against a rank, throwing a ShapeError when out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(`[${op}] Axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** Checks that a user-supplied shape holds non-negative integers. */
export function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`[${op}] Invalid shape ${fmtShape(shape)}`);
  }
}

/**
 * Resolves a reshape target (one entry may be -1) and returns the strides of the reshaped view when it
 * can share storage with (shape, strides), or null when the data must be copied first (torch's view rule).
 */
export function reshapeStrides(
  shape: Shape,
  strides: readonly number[],
  target: Shape,
): { shape: number[]; strides: number[] | null } {
  const n = numel(shape);
  const out = [...target];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    if (out.indexOf(-1, neg + 1) >= 0)
      throw new ShapeError(`[reshape] Only one dimension may be -1, got ${fmtShape(target)}`);
    const rest = numel(out.filter((_, i) => i !== neg));
    if (rest === 0 || n % rest !== 0) {
      throw new ShapeError(`[reshape] Cannot reshape ${fmtShape(shape)} to ${fmtShape(target)}`);
    }
    out[neg] = n / rest;
  }
  checkShape('reshape', out);
  if (numel(out) !== n)
    throw new ShapeError(`[reshape] Cannot reshape ${fmtShape(shape)} (${n} elements) to ${fmtShape(target)}`);
  return { shape: out, strides: viewStrides(shape, strides, out) };
}

// Torch's computeStride: walks chunks of old dims that are contiguous with each other and maps the
// new dims onto them; returns null when a new dim would straddle a non-contiguous boundary.
function viewStrides(oldShape: Shape, oldStrides: readonly number[], newShape: Shape): number[] | null {
  const newStrides = new Array<number>(newShape.length).fill(0);
  if (numel(oldShape) === 0) return contiguousStrides(newShape);
  if (oldShape.length === 0) return newShape.map(() => 1);
  let viewD = newShape.length - 1;
  let chunkBaseStride = oldStrides[oldStrides.length - 1]!;
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let tensorD = oldShape.length - 1; tensorD >= 0; tensorD--) {
    tensorNumel *= oldShape[tensorD]!;
    if (tensorD === 0 || (oldShape[tensorD - 1] !== 1 && oldStrides[tensorD - 1] !== tensorNumel * chunkBaseStride)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        newStrides[viewD] = viewNumel * chunkBaseStride;
        viewNumel *= newShape[viewD]!;
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (tensorD > 0) {
        chunkBaseStride = oldStrides[tensorD - 1]!;
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  if (viewD !== -1) return null;
  return newStrides;
}
