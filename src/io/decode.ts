// Converting raw little-endian tensor bytes from a safetensors file into engine host arrays, one
// chunk at a time. The common cases avoid per-element calls: BF16 → f32 is a 16-bit shift into a
// Uint32Array view, F16 → f32 a table lookup, same-type loads reinterpret the bytes without a copy.
// Results are bit-identical to src/backends/dtype.ts's conversions.

import { type DType, type HostArray, f16ToF32, f32ToF16 } from '../backends/dtype.js';

/** A value that does not fit the requested dtype (an I64 beyond int32, a U64 beyond int64). */
export class ValueRangeError extends Error {
  override name = 'ValueRangeError';
}

/**
 * `n` elements of file dtype `src`, held at the start of `bytes` (whose byteOffset is a multiple of 8),
 * as a host array of engine dtype `dst`. The result may alias `bytes` or scratch memory that the next
 * call reuses: upload it before decoding the next chunk. `first` is the index of the chunk's first
 * element in its tensor, for error messages. The caller has checked canLoadAs(src, dst).
 */
export function decodeChunk(src: string, dst: DType, bytes: Uint8Array, n: number, first: number): HostArray {
  switch (dst) {
    case 'f32':
      return toF32(src, bytes, n);
    case 'f64':
      return toF64(src, bytes, n);
    case 'bf16':
      return src === 'BF16' ? u16(bytes, n) : f32ToBf16Array(toF32(src, bytes, n, out2(n)));
    case 'f16':
      return src === 'F16' ? u16(bytes, n) : f32ToF16Array(toF32(src, bytes, n, out2(n)));
    case 'i32':
      return toI32(src, bytes, n, first);
    case 'i64':
      return toI64(src, bytes, n, first);
    case 'bool':
      return boolBytes(bytes, n);
  }
}

// ---- views and scratch ----------------------------------------------------------------------

const u16 = (b: Uint8Array, n: number): Uint16Array => new Uint16Array(b.buffer, b.byteOffset, n);
const i32v = (b: Uint8Array, n: number): Int32Array => new Int32Array(b.buffer, b.byteOffset, n);

/** Scratch output, grown on demand and reused: decoding never allocates per chunk in steady state. */
let scratch = new ArrayBuffer(0);
function out<T>(ctor: new (buf: ArrayBuffer, offset: number, length: number) => T, bytesPer: number, n: number): T {
  if (scratch.byteLength < n * bytesPer) scratch = new ArrayBuffer(n * bytesPer);
  return new ctor(scratch, 0, n);
}

/** A second scratch for two-step conversions (X → f32 → bf16): the f32 step lives here. */
let scratch2 = new ArrayBuffer(0);
function out2(n: number): Float32Array {
  if (scratch2.byteLength < n * 4) scratch2 = new ArrayBuffer(n * 4);
  return new Float32Array(scratch2, 0, n);
}

/** Drops the scratch memory (a few MB) once loading is done. */
export function releaseDecodeScratch(): void {
  scratch = new ArrayBuffer(0);
  scratch2 = new ArrayBuffer(0);
}

let f16Table: Float32Array | null = null;
/** f16ToF32 of every 16-bit pattern (256 KB), so decoding F16 is one lookup per element. */
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// ---- floats ---------------------------------------------------------------------------------

/** f32 from any numeric file dtype; F32 itself is a view of the bytes (no copy). */
function toF32(src: string, b: Uint8Array, n: number, dest?: Float32Array): Float32Array {
  if (src === 'F32') return new Float32Array(b.buffer, b.byteOffset, n);
  const o = dest ?? out(Float32Array, 4, n);
  switch (src) {
    case 'BF16': {
      const s = u16(b, n);
      const o32 = new Uint32Array(o.buffer, o.byteOffset, n);
      for (let i = 0; i < n; i++) o32[i] = s[i]! << 16;
      return o;
    }
    case 'F16': {
      const s = u16(b, n);
      const lut = f16Lut();
      for (let i = 0; i < n; i++) o[i] = lut[s[i]!]!;
      return o;
    }
    case 'F64':
      o.set(new Float64Array(b.buffer, b.byteOffset, n)); // rounds to nearest even
      return o;
    case 'I64':
    case 'U64':
      return int64ToFloat(src === 'U64', b, n, o);
    case 'BOOL':
      for (let i = 0; i < n; i++) o[i] = b[i]! === 0 ? 0 : 1;
      return o;
    default:
      o.set(smallIntView(src, b, n));
      return o;
  }
}

function toF64(src: string, b: Uint8Array, n: number): Float64Array {
  if (src === 'F64') return new Float64Array(b.buffer, b.byteOffset, n);
  const o = out(Float64Array, 8, n);
  if (src === 'F32') o.set(new Float32Array(b.buffer, b.byteOffset, n));
  else if (src === 'I64' || src === 'U64') int64ToFloat(src === 'U64', b, n, o);
  else if (src === 'BF16' || src === 'F16' || src === 'BOOL') o.set(toF32(src, b, n, out2(n)));
  else o.set(smallIntView(src, b, n));
  return o;
}

function int64ToFloat<T extends Float32Array | Float64Array>(unsigned: boolean, b: Uint8Array, n: number, o: T): T {
  const w = i32v(b, 2 * n);
  for (let i = 0; i < n; i++) {
    const lo = w[2 * i]! >>> 0;
    const hi = w[2 * i + 1]!;
    o[i] = (unsigned ? hi >>> 0 : hi) * 4294967296 + lo;
  }
  return o;
}

/** f32 → bf16 with dtype.ts's f32ToBf16 rounding (nearest even, NaN kept quiet), inlined on the bits. */
function f32ToBf16Array(f: Float32Array): Uint16Array {
  const n = f.length;
  const bits = new Uint32Array(f.buffer, f.byteOffset, n);
  const o = out(Uint16Array, 2, n);
  for (let i = 0; i < n; i++) {
    const u = bits[i]!;
    o[i] =
      (u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0
        ? ((u >>> 16) | 0x40) & 0xffff
        : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return o;
}

function f32ToF16Array(f: Float32Array): Uint16Array {
  const o = out(Uint16Array, 2, f.length);
  for (let i = 0; i < f.length; i++) o[i] = f32ToF16(f[i]!);
  return o;
}

// ---- integers -------------------------------------------------------------------------------

/** A view of 8/16/32-bit integer data in its own typed array (values convert exactly on .set()). */
function smallIntView(src: string, b: Uint8Array, n: number): ArrayLike<number> {
  switch (src) {
    case 'U8':
      return new Uint8Array(b.buffer, b.byteOffset, n);
    case 'I8':
      return new Int8Array(b.buffer, b.byteOffset, n);
    case 'I16':
      return new Int16Array(b.buffer, b.byteOffset, n);
    case 'U16':
      return new Uint16Array(b.buffer, b.byteOffset, n);
    case 'I32':
      return new Int32Array(b.buffer, b.byteOffset, n);
    case 'U32':
      return new Uint32Array(b.buffer, b.byteOffset, n);
  }
  throw new Error(`[safetensors] ${src} is not a small integer dtype`);
}

function toI32(src: string, b: Uint8Array, n: number, first: number): Int32Array {
  if (src === 'I32') return i32v(b, n);
  const o = out(Int32Array, 4, n);
  if (src === 'I64' || src === 'U64') {
    const w = i32v(b, 2 * n);
    for (let i = 0; i < n; i++) {
      const lo = w[2 * i]!;
      const hi = w[2 * i + 1]!;
      // Fits int32 when the high word is the sign extension of the low one (and, unsigned, is 0).
      if (hi !== lo >> 31 || (src === 'U64' && hi !== 0))
        throw new ValueRangeError(`element ${first + i} = ${int64String(src === 'U64', lo, hi)} does not fit i32`);
      o[i] = lo;
    }
  } else if (src === 'U32') {
    const s = new Uint32Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) {
      if (s[i]! > 0x7fffffff) throw new ValueRangeError(`element ${first + i} = ${s[i]} does not fit i32`);
      o[i] = s[i]!;
    }
  } else if (src === 'BOOL') {
    for (let i = 0; i < n; i++) o[i] = b[i]! === 0 ? 0 : 1;
  } else {
    o.set(smallIntView(src, b, n));
  }
  return o;
}

function toI64(src: string, b: Uint8Array, n: number, first: number): BigInt64Array {
  if (src === 'I64') return new BigInt64Array(b.buffer, b.byteOffset, n);
  if (src === 'U64') {
    const w = i32v(b, 2 * n);
    for (let i = 0; i < n; i++) {
      if (w[2 * i + 1]! < 0)
        throw new ValueRangeError(
          `element ${first + i} = ${int64String(true, w[2 * i]!, w[2 * i + 1]!)} does not fit i64`,
        );
    }
    return new BigInt64Array(b.buffer, b.byteOffset, n);
  }
  const o = out(BigInt64Array, 8, n);
  const w = new Int32Array(o.buffer, o.byteOffset, 2 * n);
  const bool = src === 'BOOL';
  const s = bool ? new Uint8Array(b.buffer, b.byteOffset, n) : smallIntView(src, b, n);
  for (let i = 0; i < n; i++) {
    const v = bool ? +(s[i] !== 0) : s[i]!;
    w[2 * i] = v | 0; // low word (U32 values above 2^31 keep their bits)
    w[2 * i + 1] = v < 0 ? -1 : 0;
  }
  return o;
}

/** BOOL bytes as 0/1 (torch writes 0 and 1; any other byte is read as true). */
function boolBytes(b: Uint8Array, n: number): Uint8Array {
  const s = new Uint8Array(b.buffer, b.byteOffset, n);
  let clean = true;
  for (let i = 0; i < n && clean; i++) clean = s[i]! <= 1;
  if (clean) return s;
  const o = out(Uint8Array, 1, n);
  for (let i = 0; i < n; i++) o[i] = s[i]! === 0 ? 0 : 1;
  return o;
}

function int64String(unsigned: boolean, lo: number, hi: number): string {
  const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
  return (unsigned ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v)).toString();
}
