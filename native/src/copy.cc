// copy (strided, with dtype conversion between every pair of storage dtypes), fill, and the strided
// gather into host memory behind download(). Same-dtype dense runs are memcpy; conversions are typed
// loops instantiated per dtype pair so the hot ones (f32 <-> bf16/f16) vectorise.
#include <cstring>

#include "convert.h"
#include "kernels.h"
#include "views.h"

namespace vera {
namespace {

// Storage types per dtype code; half floats are their uint16 bit patterns.
struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
struct Bool8 { uint8_t v; };

inline double load(float x) { return x; }
inline double load(F16 x) { return f16_to_f32(x.bits); }
inline double load(BF16 x) { return bf16_to_f32(x.bits); }
inline double load(int32_t x) { return x; }
inline double load(int64_t x) { return (double)x; }
inline double load(Bool8 x) { return x.v; }

template <class D> D store(double x);
template <> inline float store<float>(double x) { return (float)x; }
template <> inline F16 store<F16>(double x) { return F16{f32_to_f16((float)x)}; }
template <> inline BF16 store<BF16>(double x) { return BF16{f32_to_bf16((float)x)}; }
template <> inline int32_t store<int32_t>(double x) { return to_i32(x); }
template <> inline int64_t store<int64_t>(double x) { return to_i64(x); }
template <> inline Bool8 store<Bool8>(double x) { return Bool8{(uint8_t)(x != 0 ? 1 : 0)}; }

// Float sources skip the double round trip (exact either way, but this vectorises).
template <class D> inline D cvt_from_f32(float x) { return store<D>(x); }
template <> inline F16 cvt_from_f32<F16>(float x) { return F16{f32_to_f16(x)}; }
template <> inline BF16 cvt_from_f32<BF16>(float x) { return BF16{f32_to_bf16(x)}; }

template <class S, class D>
inline D cvt(S x) { return store<D>(load(x)); }
template <> inline float cvt<BF16, float>(BF16 x) { return bf16_to_f32(x.bits); }
template <> inline float cvt<F16, float>(F16 x) { return f16_to_f32(x.bits); }
template <> inline BF16 cvt<float, BF16>(float x) { return cvt_from_f32<BF16>(x); }
template <> inline F16 cvt<float, F16>(float x) { return cvt_from_f32<F16>(x); }

template <class S, class D>
void convert_layout(const Layout<2>& L, char* obase, const char* abase) {
  D* o = reinterpret_cast<D*>(obase);
  const S* a = reinterpret_cast<const S*>(abase);
  for_each_run(L, kGrainCheap / 4, [&](int64_t n, const int64_t* off, const int64_t* st) {
    D* op = o + off[0];
    const S* ap = a + off[1];
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; i++) op[i] = cvt<S, D>(ap[i]);
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = cvt<S, D>(ap[i * st[1]]);
    }
  });
}

template <class S>
void convert_to(DType od, const Layout<2>& L, char* o, const char* a) {
  switch (od) {
    case DType::F32: return convert_layout<S, float>(L, o, a);
    case DType::F16: return convert_layout<S, F16>(L, o, a);
    case DType::BF16: return convert_layout<S, BF16>(L, o, a);
    case DType::I32: return convert_layout<S, int32_t>(L, o, a);
    case DType::I64: return convert_layout<S, int64_t>(L, o, a);
    case DType::Bool: return convert_layout<S, Bool8>(L, o, a);
    case DType::F64: break;
  }
}

// A transpose-like copy: the output is dense along the innermost dim but the source is dense along
// another dim d. Copies 32×32 tiles of (d, innermost) so both sides stay in cache lines; returns false
// when the layout is not of that kind.
template <class T>
bool tiled_copy(const Layout<2>& L, T* o, const T* a) {
  const int last = L.ndim - 1;
  if (last < 1 || L.st[0][last] != 1 || L.st[1][last] == 1) return false;
  int d = -1;
  for (int k = 0; k < last; k++)
    if (L.st[1][k] == 1) d = k;
  if (d < 0) return false;
  constexpr int64_t B = 32;
  // Outer index space: every dim except d and last.
  int64_t oshape[kMaxDims], ost0[kMaxDims], ost1[kMaxDims];
  int on = 0;
  int64_t outer = 1;
  for (int k = 0; k < last; k++) {
    if (k == d) continue;
    oshape[on] = L.shape[k];
    ost0[on] = L.st[0][k];
    ost1[on] = L.st[1][k];
    outer *= L.shape[k];
    on++;
  }
  const int64_t ni = L.shape[d], nj = L.shape[last];
  const int64_t so = L.st[0][d], sa = L.st[1][last];
  const int64_t ti = (ni + B - 1) / B, tj = (nj + B - 1) / B;
  const int64_t tasks = outer * ti;
  parallel_rows(tasks, B * nj, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; task++) {
      int64_t p = task / ti, oo = L.off[0], ao = L.off[1];
      for (int k = on - 1; k >= 0; k--) {
        const int64_t idx = p % oshape[k];
        p /= oshape[k];
        oo += idx * ost0[k];
        ao += idx * ost1[k];
      }
      const int64_t i0 = (task % ti) * B, i1 = std::min(ni, i0 + B);
      for (int64_t jb = 0; jb < tj; jb++) {
        const int64_t j0 = jb * B, j1 = std::min(nj, j0 + B);
        for (int64_t i = i0; i < i1; i++) {
          T* orow = o + oo + i * so;
          const T* acol = a + ao + i;
          for (int64_t j = j0; j < j1; j++) orow[j] = acol[j * sa];
        }
      }
    }
  });
  return true;
}

template <class T>
void raw_copy(const Layout<2>& L, char* obase, const char* abase) {
  T* o = reinterpret_cast<T*>(obase);
  const T* a = reinterpret_cast<const T*>(abase);
  if (tiled_copy<T>(L, o, a)) return;
  for_each_run(L, kGrainCheap, [&](int64_t n, const int64_t* off, const int64_t* st) {
    T* op = o + off[0];
    const T* ap = a + off[1];
    if (st[0] == 1 && st[1] == 1) std::memmove(op, ap, n * sizeof(T));  // memmove: an aliasing output stays memory-safe
    else if (st[1] == 0) {
      const T x = ap[0];
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = x;
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = ap[i * st[1]];
    }
  });
}

void copy_impl(const char* k, const View& out, const View& a) {
  const DType od = out.dtype;
  if (out.dtype == DType::F64 || a.dtype == DType::F64) fail(k, "f64 is not supported by the native backend (use f32)");
  need_same_shape(k, "input", a, out);
  need_no_broadcast(k, "output", out);
  const View* vs[2] = {&out, &a};
  Layout<2> L = make_layout<2>(k, vs);
  char* o = static_cast<char*>(out.base);
  const char* src = static_cast<const char*>(a.base);
  if (od == a.dtype) {
    switch (dtype_bytes(od)) {
      case 1: return raw_copy<uint8_t>(L, o, src);
      case 2: return raw_copy<uint16_t>(L, o, src);
      case 4: return raw_copy<uint32_t>(L, o, src);
      default: return raw_copy<uint64_t>(L, o, src);
    }
  }
  switch (a.dtype) {
    case DType::F32: return convert_to<float>(od, L, o, src);
    case DType::F16: return convert_to<F16>(od, L, o, src);
    case DType::BF16: return convert_to<BF16>(od, L, o, src);
    case DType::I32: return convert_to<int32_t>(od, L, o, src);
    case DType::I64: return convert_to<int64_t>(od, L, o, src);
    case DType::Bool: return convert_to<Bool8>(od, L, o, src);
    case DType::F64: break;
  }
}

template <class T>
void fill_typed(void* base, int64_t n, T x) {
  T* p = static_cast<T*>(base);
  parallel_blocks(n, kGrainCheap, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) p[i] = x;
  });
}

}  // namespace

void copy(const View& out, const View& a) { copy_impl("copy", out, a); }

void copy_to_host(void* dst, const View& a) {
  View host;
  host.base = dst;
  host.dtype = a.dtype;
  host.offset = 0;
  host.ndim = a.ndim;
  int64_t s = 1;
  for (int i = a.ndim - 1; i >= 0; i--) {
    host.shape[i] = a.shape[i];
    host.strides[i] = s;
    s *= a.shape[i];
  }
  host.present = true;
  copy_impl("download", host, a);
}

void fill(const View& out, double value) {
  const char* k = "fill";
  if (out.dtype == DType::F64) fail(k, "f64 is not supported by the native backend (use f32)");
  need_contig(k, "output", out);
  const int64_t n = out.numel();
  void* p = static_cast<char*>(out.base) + out.offset * dtype_bytes(out.dtype);
  switch (out.dtype) {
    case DType::F32: return fill_typed<float>(p, n, (float)value);
    case DType::F16: return fill_typed<uint16_t>(p, n, f32_to_f16((float)value));
    case DType::BF16: return fill_typed<uint16_t>(p, n, f32_to_bf16((float)value));
    case DType::I32: return fill_typed<int32_t>(p, n, to_i32(value));
    case DType::I64: return fill_typed<int64_t>(p, n, to_i64(value));
    case DType::Bool: return fill_typed<uint8_t>(p, n, value != 0 ? 1 : 0);
    case DType::F64: break;
  }
}

}  // namespace vera
