// Helpers shared by the op files: output allocation, operand checks, and summing a broadcast
// gradient back to an input's shape.

import type { Backend } from '../backends/backend.js';
import { type DType, isComputeFloat } from '../backends/dtype.js';
import { DTypeError, DeviceError, fmtShape } from '../tensor/errors.js';
import { contiguousStrides, numel, shapesEqual } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';

/** A new contiguous, uninitialised tensor on `backend`. */
export function alloc(backend: Backend, shape: readonly number[], dtype: DType): Tensor {
  return new Tensor(Storage.alloc(backend, dtype, numel(shape)), shape);
}

/** A new uninitialised tensor shaped and typed like `t` (or with the given shape/dtype). */
export function allocLike(t: Tensor, shape: readonly number[] = t.shape, dtype: DType = t.dtype): Tensor {
  return alloc(t.backend, shape, dtype);
}

/**
 * A view sharing storage with `t` (its own handle, so it can be disposed independently). A new shape
 * without strides means a contiguous `t` read in that shape.
 */
export function alias(
  t: Tensor,
  shape: readonly number[] = t.shape,
  strides: readonly number[] = shape === t.shape ? t.strides : contiguousStrides(shape),
  offset = t.offset,
): Tensor {
  if (t.disposed) t.view('alias'); // throws DisposedError
  return new Tensor(t.storage, shape, strides, offset);
}

/** Checks that all tensors live on one backend; returns it. */
export function sameBackend(op: string, ...ts: Tensor[]): Backend {
  const b = ts[0]!.backend;
  for (const t of ts) {
    if (t.backend !== b)
      throw new DeviceError(
        `[${op}] Tensors are on different backends ("${b.name}" and "${t.backend.name}"); move them with to()`,
      );
  }
  return b;
}

/** Checks that tensors share one float compute dtype; returns it. */
export function floatDType(op: string, ...ts: Tensor[]): DType {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (!isComputeFloat(t.dtype))
      throw new DTypeError(
        `[${op}] Expected a float tensor, got ${t.dtype} of shape ${fmtShape(t.shape)}; cast it first`,
      );
    if (t.dtype !== d) throw new DTypeError(`[${op}] Dtypes differ: ${d} and ${t.dtype}`);
  }
  return d;
}

export function expectDType(op: string, t: Tensor, dtype: DType, what: string): void {
  if (t.dtype !== dtype)
    throw new DTypeError(`[${op}] ${what} must be ${dtype}, got ${t.dtype} of shape ${fmtShape(t.shape)}`);
}

/** Sums a gradient of a broadcast result back to the shape of the input that was broadcast. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const keptShape = g.shape.map((s, d) => (axes.includes(d) ? 1 : s));
  const out = allocLike(g, keptShape);
  g.backend.reduce('sum', out.view('sumToShape'), g.view('sumToShape'), axes);
  if (shapesEqual(keptShape, shape)) return out;
  const r = alias(out, shape); // same element order, leading 1s dropped
  out.dispose();
  return r;
}
