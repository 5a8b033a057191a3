// bf16 views (backend.ts, "bf16 activations"): what the kernels that take them natively share. A bf16
// element is the upper 16 bits of an f32 (uint16_t in memory); loads widen it exactly, stores round to
// nearest even (cu::f32_to_bf16_bits, the rounding of copy() and of the js writer), so a kernel that
// computes in f32 (or double) and stores through st() gives what the widening fallback of
// src/backends/bf16-views.ts gives: the f32 kernel's result, rounded once. Kernels template over the
// element type of each float view (float or bf16_t) and dispatch on the views' dtypes with
// with_float(); host checks accept f32 or bf16 and reject everything else naming the view.
#pragma once

#include <utility>

#include "device.cuh"
#include "kernels.h"

namespace vera {
namespace cu {

using bf16_t = uint16_t;  // the bits of a bfloat16

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t* p, int64_t i) { return bf16_bits_to_f32(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16_t* p, int64_t i, float v) { p[i] = f32_to_bf16_bits(v); }

// Eight consecutive bf16 elements in one 16-byte access (p 16-byte aligned): memory-bound kernels on
// bf16 activations reach the bandwidth only with wide accesses (two bytes a thread leave it far below).
__device__ __forceinline__ void ld8(const bf16_t* p, float (&x)[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; k++) {
    x[2 * k] = __uint_as_float(w[k] << 16);
    x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
  }
}
__device__ __forceinline__ void st8(bf16_t* p, const float (&x)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int k = 0; k < 4; k++) w[k] = f32_to_bf16_bits(x[2 * k]) | ((uint32_t)f32_to_bf16_bits(x[2 * k + 1]) << 16);
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class T>
constexpr bool is_bf16() {
  return sizeof(T) == 2;
}

// Calls f(T{}) with T = bf16_t for a bf16 view, float otherwise (the caller checked f32 or bf16).
template <class F>
inline void with_float(DType d, F&& f) {
  if (d == DType::BF16) f(bf16_t{});
  else f(float{});
}

inline bool is_float(DType d) { return d == DType::F32 || d == DType::BF16; }

// The element pointer of a float view (f32 or bf16) at its offset.
template <class T>
inline T* at(const View& v) {
  return static_cast<T*>(v.base) + v.offset;
}

// Device memory for one kernel call's intermediates (an f32 copy of a bf16 view), stream-ordered:
// allocated on the backend's stream, released there when the object dies (the kernels queued with
// it run first). The pool keeps the memory, so this costs no synchronisation.
struct DeviceTemp {
  void* p = nullptr;
  DeviceTemp(size_t bytes, const char* k) {
    check(cudaMallocAsync(&p, bytes < 256 ? 256 : bytes, stream()), k, "out of device memory for an f32 copy of a bf16 view");
  }
  ~DeviceTemp() {
    if (p) cudaFreeAsync(p, stream());
  }
  DeviceTemp(const DeviceTemp&) = delete;
  DeviceTemp& operator=(const DeviceTemp&) = delete;
};

}  // namespace cu

// f32 or bf16, else "<what> must be f32 or bf16, got <dtype>" (f64 with the cuda backend's reason).
inline void need_float(const char* k, const char* what, const View& v) {
  if (v.dtype == DType::F64) fail(k, "%s is f64, which the cuda backend does not support (use f32 or bf16)", what);
  if (!cu::is_float(v.dtype)) fail(k, "%s must be f32 or bf16, got %s", what, dtype_name(v.dtype));
}
inline void need_float_contig(const char* k, const char* what, const View& v) {
  need_float(k, what, v);
  need_contig(k, what, v);
}

// A dense row-major view over v's shape in `mem` (at least numel · dtype_bytes(dt) bytes), as dtype dt,
// holding v's elements (converted by copy()) when `fill` is set.
inline View dense_like(const View& v, DType dt, void* mem, bool fill) {
  View d;
  d.base = mem;
  d.dtype = dt;
  d.offset = 0;
  d.ndim = v.ndim;
  d.present = true;
  int64_t s = 1;
  for (int i = v.ndim - 1; i >= 0; i--) {
    d.shape[i] = v.shape[i];
    d.strides[i] = s;
    s *= v.shape[i];
  }
  if (fill) copy(d, v);
  return d;
}

}  // namespace vera
