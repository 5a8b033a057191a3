// Conversions between storage dtypes, bit-compatible with src/tensor/dtype.ts and the js backend's
// reader/writer: halves round to nearest even, integers truncate and wrap like typed-array stores,
// non-finite values become 0 in integers, bool is x != 0.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"
#include "mathfun.h"

namespace vera {

inline float bf16_to_f32(uint16_t h) { return bits_to_f((uint32_t)h << 16); }

inline uint16_t f32_to_bf16(float x) {
  const uint32_t u = f_to_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return (uint16_t)(((u >> 16) | 0x40) & 0xffff);
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)((u + rounding) >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t s = (uint32_t)(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f;
  const uint32_t m = h & 0x3ff;
  if (e == 0) {  // zero or subnormal: m · 2^-24, exact in float
    const float v = (float)m * 5.9604644775390625e-8f;
    return s ? -v : v;
  }
  if (e == 31) return m ? bits_to_f(0x7fc00000u) : bits_to_f(s | 0x7f800000u);
  return bits_to_f(s | ((e - 15 + 127) << 23) | (m << 13));
}

inline uint16_t f32_to_f16(float x) {
  const uint32_t u = f_to_bits(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int32_t exp = (int32_t)((u >> 23) & 0xff);
  uint32_t mant = u & 0x7fffffu;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int32_t e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    const int32_t shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;  // a carry into the exponent is correct
  return (uint16_t)(sign | half);
}

// Math.trunc then an Int32Array / BigInt64Array store (wraps modulo 2^32 / 2^64); non-finite → 0.
inline int32_t to_i32(double d) {
  if (!std::isfinite(d)) return 0;
  const double t = std::trunc(d);
  if (t >= -2147483648.0 && t <= 2147483647.0) return (int32_t)t;
  double m = std::fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}
inline int64_t to_i64(double d) {
  if (!std::isfinite(d)) return 0;
  const double t = std::trunc(d);
  if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) return (int64_t)t;
  double m = std::fmod(t, 18446744073709551616.0);
  if (m < 0) m += 18446744073709551616.0;
  return (int64_t)(uint64_t)m;
}

// One element of any storage dtype as a double (the js backend's reader()).
inline double load_as_double(const void* base, int64_t i, DType d) {
  switch (d) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F64: return static_cast<const double*>(base)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::I32: return static_cast<const int32_t*>(base)[i];
    case DType::I64: return (double)static_cast<const int64_t*>(base)[i];
    case DType::Bool: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

// Stores a double with the js backend's writer() semantics.
inline void store_from_double(void* base, int64_t i, DType d, double x) {
  switch (d) {
    case DType::F32: static_cast<float*>(base)[i] = (float)x; return;
    case DType::F64: static_cast<double*>(base)[i] = x; return;
    case DType::F16: static_cast<uint16_t*>(base)[i] = f32_to_f16((float)x); return;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = f32_to_bf16((float)x); return;
    case DType::I32: static_cast<int32_t*>(base)[i] = to_i32(x); return;
    case DType::I64: static_cast<int64_t*>(base)[i] = to_i64(x); return;
    case DType::Bool: static_cast<uint8_t*>(base)[i] = x != 0 ? 1 : 0; return;
  }
}

}  // namespace vera
