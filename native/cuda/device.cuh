// What every CUDA kernel file shares: the backend's one stream, error checks that throw vera::Error
// ("[cuda <kernel>] ..."), the record through which kernels report data-dependent errors (an id out
// of range) to the host, launch-size helpers and the device-side dtype conversions (bit-identical to
// native/src/convert.h and the js backend). Kernels are declared in native/src/kernels.h, the same
// contract the CPU addon implements; each .cu file defines its family's host functions there.
#pragma once
#include <string>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../src/common.h"

namespace vera {
namespace cu {

// Every kernel and copy of the backend is queued on this stream, in call order.
cudaStream_t stream();
// The device in use (VERA_CUDA_DEVICE, default 0); the first call initialises the runtime and throws
// "[cuda init] ..." when there is no usable device.
int device();
// Multiprocessor count of the device (grid sizing).
int sm_count();

// Throws vera::Error "[cuda <kernel>] <what>: <CUDA's message>" unless e is cudaSuccess.
void check(cudaError_t e, const char* kernel, const char* what);
// After a launch: a bad configuration is reported here; faults inside the kernel surface at the next sync.
inline void launched(const char* kernel) { check(cudaGetLastError(), kernel, "kernel launch"); }

// ---- data-dependent errors ------------------------------------------------------------------------
// A kernel that indexes by data never reads or writes out of range: it skips the element and records
// the first bad value here (mapped host memory, so the host reads it after a sync without a copy).
// sync() and every download throw it as "[cuda <kernel>] <what> <value> at position <pos> is out of
// range ..." and clear it.
enum ErrKernel : int { EK_NONE, EK_EMBEDDING, EK_EMBEDDING_BACKWARD, EK_GATHER, EK_SCATTER_ADD, EK_CROSS_ENTROPY, EK_CROSS_ENTROPY_BACKWARD };
struct DeviceError {
  int flag;    // 0 = none; set once by atomicCAS
  int kernel;  // ErrKernel
  long long value, position, limit;
};
// The device-side pointer of the record.
DeviceError* device_error();
// Throws the recorded error, if any (after a sync), and clears it.
void raise_device_error();

__device__ inline void report_bad(DeviceError* e, int kernel, long long value, long long position, long long limit) {
  if (atomicCAS(&e->flag, 0, 1) == 0) {
    e->kernel = kernel;
    e->value = value;
    e->position = position;
    e->limit = limit;
  }
}

// ---- profiling (profile.cu, VERA_CUDA_PROFILE=1) ---------------------------------------------------
bool profiling();
// Replaces the label of the exported call being profiled (e.g. matmul with its shape).
void profile_label(const std::string& label);
// Totals per label since the last report, as JSON ("null" when profiling is off); starts over.
std::string profile_report();

// ---- scratch memory ---------------------------------------------------------------------------------
// Device memory for a kernel's intermediates (partial sums of a two-pass reduction, a bf16 copy of an
// operand). Slot `slot` (0..3) holds at least `bytes` until the next scratch() call for that slot: the
// host may reuse it right away because every user is queued on the one stream, in order. Never read
// back by the host.
void* scratch(size_t bytes, int slot = 0);

// ---- launch sizes ---------------------------------------------------------------------------------
constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n items: enough to fill the device, never more than needed.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t want = (n + threads - 1) / threads;
  const int64_t cap = (int64_t)sm_count() * 32;
  return (unsigned)(want < 1 ? 1 : want < cap ? want : cap);
}

// ---- dtype conversions (device) -------------------------------------------------------------------
__host__ __device__ inline float bf16_bits_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __uint_as_float((uint32_t)h << 16);
#else
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

__device__ inline uint16_t f32_to_bf16_bits(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return (uint16_t)(((u >> 16) | 0x40) & 0xffff);
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)((u + rounding) >> 16);
}

// A NaN widens to the canonical quiet NaN 0x7fc00000, as native/src/convert.h widens it.
__device__ inline float f16_bits_to_f32(uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) return __uint_as_float(0x7fc00000u);
  return __half2float(__ushort_as_half(h));
}
// NaN becomes the canonical quiet NaN with its sign (0x7e00), as the js writer and native/src/convert.h
// store it; CUDA's conversion keeps payload bits.
__device__ inline uint16_t f32_to_f16_bits(float x) {
  if (x != x) return (uint16_t)(((__float_as_uint(x) >> 16) & 0x8000u) | 0x7e00u);
  return __half_as_ushort(__float2half_rn(x));
}

// Math.trunc then an Int32Array / BigInt64Array store (wraps modulo 2^32 / 2^64); non-finite → 0.
__host__ __device__ inline int32_t to_i32(double d) {
  if (!isfinite(d)) return 0;
  const double t = trunc(d);
  if (t >= -2147483648.0 && t <= 2147483647.0) return (int32_t)t;
  double m = fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}
__host__ __device__ inline int64_t to_i64(double d) {
  if (!isfinite(d)) return 0;
  const double t = trunc(d);
  if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) return (int64_t)t;
  double m = fmod(t, 18446744073709551616.0);
  if (m < 0) m += 18446744073709551616.0;
  return (int64_t)(uint64_t)m;
}

// One element of any storage dtype as a double (the js backend's reader()).
__device__ inline double load_as_double(const void* base, int64_t i, DType d) {
  switch (d) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F64: return static_cast<const double*>(base)[i];
    case DType::F16: return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::I32: return static_cast<const int32_t*>(base)[i];
    case DType::I64: return (double)static_cast<const int64_t*>(base)[i];
    case DType::Bool: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

// Stores a double with the js backend's writer() semantics.
__device__ inline void store_from_double(void* base, int64_t i, DType d, double x) {
  switch (d) {
    case DType::F32: static_cast<float*>(base)[i] = (float)x; return;
    case DType::F64: static_cast<double*>(base)[i] = x; return;
    case DType::F16: static_cast<uint16_t*>(base)[i] = f32_to_f16_bits((float)x); return;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = f32_to_bf16_bits((float)x); return;
    case DType::I32: static_cast<int32_t*>(base)[i] = to_i32(x); return;
    case DType::I64: static_cast<int64_t*>(base)[i] = to_i64(x); return;
    case DType::Bool: static_cast<uint8_t*>(base)[i] = x != 0 ? 1 : 0; return;
  }
}

// ---- Philox4x32-10, the device twin of native/src/philox.h and src/backends/philox.ts -------------
// The uniform of absolute index j is (word[j mod 4] of block ⌊j/4⌋) >> 8 · 2^-24; element j is kept
// by dropout when that uniform is ≥ p.
__device__ inline uint32_t philox_bits24(uint64_t seed, uint64_t j) {
  const uint64_t b = j >> 2;
  uint32_t x0 = (uint32_t)b, x1 = (uint32_t)(b >> 32), x2 = 0, x3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    const uint32_t hi0 = __umulhi(0xd2511f53u, x0), lo0 = 0xd2511f53u * x0;
    const uint32_t hi1 = __umulhi(0xcd9e8d57u, x2), lo1 = 0xcd9e8d57u * x2;
    const uint32_t n0 = hi1 ^ x1 ^ k0;
    const uint32_t n2 = hi0 ^ x3 ^ k1;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  const uint32_t w = (j & 3) == 0 ? x0 : (j & 3) == 1 ? x1 : (j & 3) == 2 ? x2 : x3;
  return w >> 8;
}

// Dropout's threshold: element kept when bits24 ≥ ceil(p · 2^24) (u ≥ p with u = bits · 2^-24; p · 2^24
// is exact in double), as native/src/philox.h's philox_keep_threshold.
inline uint32_t dropout_threshold(double p) { return (uint32_t)std::ceil(p * 16777216.0); }

}  // namespace cu
}  // namespace vera
