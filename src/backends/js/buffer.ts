// Host-memory buffers of the js backend and the strided-view helpers its kernels share.

import type { BackendBuffer, View } from '../backend.js';
import type { DType, FloatArray, HostArray } from '../dtype.js';
import { DTYPE_BYTES, hostArray } from '../dtype.js';

export class JsBuffer implements BackendBuffer {
  #data: HostArray | null;
  readonly byteLength: number;

  constructor(
    readonly dtype: DType,
    n: number,
  ) {
    this.#data = hostArray(dtype, n);
    this.byteLength = n * DTYPE_BYTES[dtype];
  }

  get data(): HostArray {
    if (this.#data === null) throw new Error('[js] Buffer used after free');
    return this.#data;
  }

  get freed(): boolean {
    return this.#data === null;
  }

  release(): void {
    this.#data = null;
  }
}

export function dataOf(v: View, op: string): HostArray {
  if (!(v.buf instanceof JsBuffer)) throw new Error(`[js ${op}] Buffer does not belong to the js backend`);
  if (v.buf.dtype !== v.dtype)
    throw new Error(`[js ${op}] View dtype ${v.dtype} does not match buffer dtype ${v.buf.dtype}`);
  return v.buf.data;
}

/** The float data of a view; throws naming the op for non-float views. */
export function floats(v: View, op: string): FloatArray {
  const d = dataOf(v, op);
  if (!(d instanceof Float32Array || d instanceof Float64Array)) {
    throw new Error(`[js ${op}] Expected a float tensor, got ${v.dtype}`);
  }
  return d;
}

export function ints(v: View, op: string): Int32Array {
  const d = dataOf(v, op);
  if (!(d instanceof Int32Array)) throw new Error(`[js ${op}] Expected an i32 tensor, got ${v.dtype}`);
  return d;
}

export function bools(v: View, op: string): Uint8Array {
  const d = dataOf(v, op);
  if (!(d instanceof Uint8Array)) throw new Error(`[js ${op}] Expected a bool tensor, got ${v.dtype}`);
  return d;
}

/** Element offsets of a view in row-major order of its shape (the reference way to walk strides). */
export function offsets(shape: readonly number[], strides: readonly number[], offset: number): Float64Array {
  let n = 1;
  for (const d of shape) n *= d;
  const out = new Float64Array(n);
  if (n === 0) return out;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** offsets() of a view, bounds-checked against its buffer. */
export function viewOffsets(v: View, op: string): Float64Array {
  const n = dataOf(v, op).length;
  const offs = offsets(v.shape, v.strides, v.offset);
  let max = v.offset;
  for (let d = 0; d < v.shape.length; d++) {
    if (v.strides[d]! < 0) throw new Error(`[js ${op}] Negative stride`);
    if (v.shape[d]! > 0) max += (v.shape[d]! - 1) * v.strides[d]!;
  }
  if (offs.length > 0 && max >= n) throw new Error(`[js ${op}] View exceeds its buffer (${max} ≥ ${n})`);
  return offs;
}

/** Checks that a view is contiguous and inside its buffer; returns its start offset. */
export function contiguousStart(v: View, op: string): number {
  let s = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.strides[i] !== s) throw new Error(`[js ${op}] Expected a contiguous view`);
    s *= v.shape[i]!;
  }
  if (v.offset + s > dataOf(v, op).length) throw new Error(`[js ${op}] View exceeds its buffer`);
  return v.offset;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Rows and row length of a contiguous view seen as [R, N] over its last axis. */
export function rowsOf(v: View): [number, number] {
  const n = v.shape.length ? v.shape[v.shape.length - 1]! : 1;
  return [n === 0 ? 0 : sizeOf(v.shape) / n, n];
}
