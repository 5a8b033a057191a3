// Types shared by every kernel: dtypes, the validated strided View, the error type kernels throw,
// and small threading helpers. Kernels see only Views; N-API stays in addon.cc.
#pragma once

#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace vera {

// Codes shared with src/backends/native (the addon exports the name list, so TS never hard-codes them).
enum class DType : int { F32 = 0, F64 = 1, F16 = 2, BF16 = 3, I32 = 4, I64 = 5, Bool = 6 };
constexpr int kNumDTypes = 7;

inline int dtype_bytes(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::Bool: return 1;
  }
  return 1;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::Bool: return "bool";
  }
  return "?";
}

// The tag of every message: "[native <kernel>]" in the CPU addon, "[cuda <kernel>]" in the CUDA one.
#ifndef VERA_TAG
#define VERA_TAG "native"
#endif

// Every user-facing failure; the addon turns it into a JS Error. The message already carries the
// "[" VERA_TAG " <kernel>]" tag.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... A>
[[noreturn]] inline void fail(const char* kernel, const char* fmt, A... args) {
  char msg[512];
  int n = std::snprintf(msg, sizeof msg, "[" VERA_TAG " %s] ", kernel);
  if constexpr (sizeof...(A) == 0) {
    std::snprintf(msg + n, sizeof msg - n, "%s", fmt);
  } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-security"
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    std::snprintf(msg + n, sizeof msg - n, fmt, args...);
#pragma GCC diagnostic pop
  }
  throw Error(msg);
}

constexpr int kMaxDims = 16;

// A strided window on a buffer, already checked by addon.cc to lie inside it (strides >= 0).
struct View {
  void* base = nullptr;  // start of the buffer (not of the view)
  DType dtype = DType::F32;
  int64_t offset = 0;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  bool present = false;  // false for a null optional view

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
  }
  bool contiguous() const {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
      if (shape[i] != 1 && strides[i] != s) return false;
      s *= shape[i];
    }
    return true;
  }
  int64_t last() const { return ndim ? shape[ndim - 1] : 1; }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(base) + offset;
  }
  float* f() const { return ptr<float>(); }
  std::string shape_str() const {
    std::string s = "(";
    for (int i = 0; i < ndim; i++) {
      if (i) s += ", ";
      s += std::to_string(shape[i]);
    }
    return s + ")";
  }
};

// ---- argument checks shared by kernels ------------------------------------------------------

inline void need_dtype(const char* k, const char* what, const View& v, DType d) {
  if (v.dtype != d) fail(k, "%s must be %s, got %s", what, dtype_name(d), dtype_name(v.dtype));
}
inline void need_f32(const char* k, const char* what, const View& v) {
  if (v.dtype == DType::F64) fail(k, "%s is f64, which the native backend does not support (use f32)", what);
  need_dtype(k, what, v, DType::F32);
}
inline void need_contig(const char* k, const char* what, const View& v) {
  if (!v.contiguous()) fail(k, "%s must be contiguous, got shape %s with non-dense strides", what, v.shape_str().c_str());
}
inline void need_f32_contig(const char* k, const char* what, const View& v) {
  need_f32(k, what, v);
  need_contig(k, what, v);
}
inline void need_numel(const char* k, const char* what, const View& v, int64_t n) {
  if (v.numel() != n) fail(k, "%s has %lld elements, expected %lld", what, (long long)v.numel(), (long long)n);
}
inline bool same_shape(const View& a, const View& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; i++)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}
inline void need_same_shape(const char* k, const char* what, const View& v, const View& ref) {
  if (!same_shape(v, ref))
    fail(k, "%s shape %s does not match %s", what, v.shape_str().c_str(), ref.shape_str().c_str());
}
// An output written in parallel must not map two indices to one element through a 0 stride.
inline void need_no_broadcast(const char* k, const char* what, const View& v) {
  for (int i = 0; i < v.ndim; i++)
    if (v.shape[i] > 1 && v.strides[i] == 0) fail(k, "%s has a 0 stride (broadcast) on axis %d", what, i);
}
// Rows of a contiguous view seen as [R, N] over its last axis.
inline void rows_of(const View& v, int64_t& r, int64_t& n) {
  n = v.last();
  r = n == 0 ? 0 : v.numel() / n;
}

// ---- threading --------------------------------------------------------------------------------

inline int max_threads() { return omp_get_max_threads(); }

// Splits [0, n) evenly across `parts` and returns part `i` as [lo, hi).
inline void split_range(int64_t n, int parts, int i, int64_t& lo, int64_t& hi) {
  int64_t q = n / parts, r = n % parts;
  lo = i * q + (i < r ? i : r);
  hi = lo + q + (i < r ? 1 : 0);
}

// Elements below which a cheap elementwise loop stays on one thread (an OpenMP fork costs ~1-2 µs).
constexpr int64_t kGrainCheap = 1 << 15;
// Same for loops that spend tens of cycles per element (exp, tanh, erf...).
constexpr int64_t kGrainHeavy = 1 << 12;

}  // namespace vera
