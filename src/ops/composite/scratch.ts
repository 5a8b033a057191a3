// What the composite kernels share: temporaries allocated on the backend and freed when the composite
// returns (also when a kernel throws), and views that reinterpret a contiguous operand as rows or
// broadcast a per-row / per-column vector. Composites see only the Backend contract's primitives.

import type { Backend, BackendBuffer, View } from '../../backends/backend.js';
import type { DType } from '../../backends/dtype.js';
import { contiguousStrides, isContiguous as denseStrides, numel } from '../../tensor/shape.js';

/** The dtype of a composite's intermediate for views like v: f64 where they are (js gradient checks), else f32. */
export function wideDType(v: View): DType {
  return v.dtype === 'f64' ? 'f64' : 'f32';
}

/** Whether a view is row-major dense from its offset (size-1 axes may have any stride). */
export function isContiguous(v: View): boolean {
  return denseStrides(v.shape, v.strides);
}

/**
 * The contiguous view `v` seen with another shape of the same size (what a kernel documented on
 * "[R, N] over the last axis" does with any rank); throws naming the op when v is not contiguous or
 * the sizes differ.
 */
export function reshaped(op: string, what: string, v: View, shape: readonly number[]): View {
  if (!isContiguous(v)) {
    throw new Error(
      `[${op}] ${what} must be contiguous, got shape (${v.shape.join(', ')}) strides (${v.strides.join(', ')})`,
    );
  }
  if (numel(v.shape) !== numel(shape)) {
    throw new Error(`[${op}] ${what} has shape (${v.shape.join(', ')}), expected ${numel(shape)} elements`);
  }
  return { buf: v.buf, dtype: v.dtype, offset: v.offset, shape, strides: contiguousStrides(shape) };
}

/** Rows and row length of a view over its last axis ([R, N]). */
export function rowsOf(v: View): [number, number] {
  const n = v.shape.length ? v.shape[v.shape.length - 1]! : 1;
  return [n === 0 ? 0 : numel(v.shape) / n, n];
}

/** A contiguous [R] (or [R, 1]) vector read as [R, N]: the same value along each row. */
export function perRow(v: View, r: number, n: number): View {
  return { buf: v.buf, dtype: v.dtype, offset: v.offset, shape: [r, n], strides: [1, 0] };
}

/** A contiguous [N] vector read as [R, N]: the same vector in every row. */
export function perColumn(v: View, r: number, n: number): View {
  return { buf: v.buf, dtype: v.dtype, offset: v.offset, shape: [r, n], strides: [0, 1] };
}

/** The temporaries of one composite call; free() returns all of them to the backend. */
export class Scratch {
  readonly #bufs: BackendBuffer[] = [];

  constructor(readonly backend: Backend) {}

  /** An uninitialised contiguous temporary. */
  tmp(dtype: DType, shape: readonly number[]): View {
    const buf = this.backend.alloc(dtype, numel(shape));
    this.#bufs.push(buf);
    return { buf, dtype, offset: 0, shape, strides: contiguousStrides(shape) };
  }

  /** One element holding `value`, broadcast (stride 0) to `shape`. */
  constant(dtype: DType, value: number, shape: readonly number[]): View {
    const one = this.tmp(dtype, [1]);
    this.backend.fill(one, value);
    return { buf: one.buf, dtype, offset: 0, shape, strides: shape.map(() => 0) };
  }

  free(): void {
    for (const b of this.#bufs) this.backend.free(b);
    this.#bufs.length = 0;
  }
}

/** Runs fn with a Scratch whose temporaries are freed afterwards, whether fn returns or throws. */
export function withScratch<T>(backend: Backend, fn: (s: Scratch) => T): T {
  const s = new Scratch(backend);
  try {
    return fn(s);
  } finally {
    s.free();
  }
}

/** Reruns a primitive's data-dependent error (an index out of range) under the fused kernel's name. */
export function asKernel<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`[${op}] ${msg}`, { cause: e });
  }
}
