// Element types, part of the backend contract (every View carries one), so backends and the tensor
// front end both import them from here. Kernels compute in f32 (f64 on the pure-TS reference backend, so
// gradient checks can run in double precision; the native backend rejects it); bf16 is a storage type
// whose GEMMs compute in bf16 (backend.ts, matmul); the others are storage (f16 weights, i32/i64 ids,
// bool masks).

export type DType = 'f32' | 'f64' | 'f16' | 'bf16' | 'i32' | 'i64' | 'bool';

export type FloatArray = Float32Array | Float64Array;
export type HostArray =
  | Float32Array
  | Float64Array
  | Uint16Array // f16 and bf16 bit patterns
  | Int32Array
  | BigInt64Array
  | Uint8Array; // bool

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  f32: 4,
  f64: 8,
  f16: 2,
  bf16: 2,
  i32: 4,
  i64: 8,
  bool: 1,
};

export const ALL_DTYPES: readonly DType[] = ['f32', 'f64', 'f16', 'bf16', 'i32', 'i64', 'bool'];

/** True for dtypes that kernels compute in (f32, and f64 on the js backend). */
export function isComputeFloat(d: DType): d is 'f32' | 'f64' {
  return d === 'f32' || d === 'f64';
}

/** True for the float dtypes ops take: the compute floats and bf16 (activations, backend.ts). */
export function isFloat(d: DType): d is 'f32' | 'f64' | 'bf16' {
  return d === 'f32' || d === 'f64' || d === 'bf16';
}

/** Allocates a zero-filled host array that holds `n` elements of `dtype`. */
export function hostArray(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n);
    case 'f64':
      return new Float64Array(n);
    case 'f16':
    case 'bf16':
      return new Uint16Array(n);
    case 'i32':
      return new Int32Array(n);
    case 'i64':
      return new BigInt64Array(n);
    case 'bool':
      return new Uint8Array(n);
  }
}

/** The host array kind that carries `dtype`, for checking data handed in by users. */
export function hostArrayMatches(dtype: DType, a: ArrayLike<unknown>): boolean {
  switch (dtype) {
    case 'f32':
      return a instanceof Float32Array;
    case 'f64':
      return a instanceof Float64Array;
    case 'f16':
    case 'bf16':
      return a instanceof Uint16Array;
    case 'i32':
      return a instanceof Int32Array;
    case 'i64':
      return a instanceof BigInt64Array;
    case 'bool':
      return a instanceof Uint8Array;
  }
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions (Node 20 has no Float16Array). Round-to-nearest-even, as torch does.

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function bf16ToF32(bits: number): number {
  u32buf[0] = bits << 16;
  return f32buf[0]!;
}

export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff; // quiet NaN
  const rounding = 0x7fff + ((u >>> 16) & 1);
  return ((u + rounding) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into the exponent: correct
  return sign | half;
}
