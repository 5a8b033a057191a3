// Helpers shared by the op files: output allocation, operand checks, and summing a broadcast
// gradient back to an input's shape.

import type { Backend } from '../backends/backend.js';
import { type DType, isFloat } from '../backends/dtype.js';
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

/** Checks that tensors share one float dtype (f32, f64, or bf16 activations); returns it. */
export function floatDType(op: string, ...ts: Tensor[]): DType {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (!isFloat(t.dtype))
      throw new DTypeError(
        `[${op}] Expected a float tensor, got ${t.dtype} of shape ${fmtShape(t.shape)}; cast it first`,
      );
    if (t.dtype !== d) throw new DTypeError(`[${op}] Dtypes differ: ${d} and ${t.dtype}`);
  }
  return d;
}

/**
 * The dtype of an elementwise result over float tensors that may mix bf16 activations with f32 (or
 * f64) ones, broadcast to `shape`. One dtype: that one. Mixed: bf16 when every wider operand is
 * broadcast (a parameter vector scaling or shifting an activation: VeRA's λ, a bias, a norm weight —
 * torch keeps such products in the activation's dtype under autocast's fused kernels), else the wider
 * dtype (torch's promotion).
 */
export function mixedDType(op: string, shape: readonly number[], ...ts: Tensor[]): DType {
  let wide: DType | null = null;
  let anyHalf = false;
  for (const t of ts) {
    if (!isFloat(t.dtype))
      throw new DTypeError(
        `[${op}] Expected a float tensor, got ${t.dtype} of shape ${fmtShape(t.shape)}; cast it first`,
      );
    if (t.dtype === 'bf16') anyHalf = true;
    else if (wide === null) wide = t.dtype;
    else if (t.dtype !== wide) throw new DTypeError(`[${op}] Dtypes differ: ${wide} and ${t.dtype}`);
  }
  if (wide === null) return 'bf16';
  if (!anyHalf) return wide;
  const full = numel(shape);
  return ts.every((t) => t.dtype === 'bf16' || t.numel < full) ? 'bf16' : wide;
}

/** The dtype of statistics and losses computed from x: f32 for bf16 activations, else x's own. */
export function statsDType(x: Tensor): DType {
  return x.dtype === 'bf16' ? 'f32' : x.dtype;
}

/**
 * Checks a norm's or loss's input against its parameters: x is a float tensor, the parameters share
 * one float dtype, and x has theirs unless it is a bf16 activation. Returns the statistics' dtype.
 */
export function paramDTypes(op: string, x: Tensor, params: readonly Tensor[]): DType {
  floatDType(op, x);
  if (params.length) {
    const p = floatDType(op, ...params);
    if (x.dtype !== p && x.dtype !== 'bf16') throw new DTypeError(`[${op}] Dtypes differ: ${x.dtype} and ${p}`);
    if (x.dtype === 'bf16' && p !== 'f32')
      throw new DTypeError(`[${op}] Parameters of a bf16 input must be f32, got ${p}`);
  }
  return statsDType(x);
}

export function expectDType(op: string, t: Tensor, dtype: DType, what: string): void {
  if (t.dtype !== dtype)
    throw new DTypeError(`[${op}] ${what} must be ${dtype}, got ${t.dtype} of shape ${fmtShape(t.shape)}`);
}

/**
 * Sums a gradient of a broadcast result back to the shape of the input that was broadcast, into
 * `dtype` (default g's: an f32 parameter's gradient from bf16 products is summed straight into f32).
 */
export function sumToShape(g: Tensor, shape: readonly number[], dtype: DType = g.dtype): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const keptShape = g.shape.map((s, d) => (axes.includes(d) ? 1 : s));
  const out = allocLike(g, keptShape, dtype);
  g.backend.reduce('sum', out.view('sumToShape'), g.view('sumToShape'), axes);
  if (shapesEqual(keptShape, shape)) return out;
  const r = alias(out, shape); // same element order, leading 1s dropped
  out.dispose();
  return r;
}
