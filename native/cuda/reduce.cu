// Reductions: sum/max/min over any set of axes of a strided view (sums accumulate in double, like the
// js backend), argmax and top-k over rows. Every reduction runs in a fixed order (per-thread partials
// combined by a fixed tree), so results are bit-identical run to run. The input and out (and top-k's
// values) may be f32 or bf16 (bf16 activations): bf16 elements are widened exactly, the accumulation
// is the f32 path's (double for sums), and a bf16 out is the f32 result rounded once.
#include <cmath>

#include "bf16.cuh"
#include "kernels.h"
#include "strided.cuh"

namespace vera {
namespace {

// An index space of merged dims with one input stride per dim.
struct Space {
  int nd = 0;
  int64_t shape[kMaxDims] = {};
  int64_t st[kMaxDims] = {};
  int64_t size = 1;
};

__device__ inline int64_t space_offset(const Space& s, int64_t flat) {
  int64_t off = 0;
  for (int d = s.nd - 1; d >= 0; d--) {
    off += (flat % s.shape[d]) * s.st[d];
    flat /= s.shape[d];
  }
  return off;
}

template <int OP>
struct Acc {
  using T = typename std::conditional<OP == R_SUM, double, float>::type;
  __device__ static T init() { return OP == R_SUM ? 0.0 : OP == R_MAX ? -INFINITY : INFINITY; }
  // NaN wins, as in the js backend.
  __device__ static T merge(T a, T b) {
    if (OP == R_SUM) return a + b;
    if (OP == R_MAX) return (b > a || b != b) ? b : a;
    return (b < a || b != b) ? b : a;
  }
};

// One thread per output: short reductions (R below a warp's worth of work per output).
template <int OP, class TO, class TI>
__global__ void reduce_thread_kernel(TO* o, const TI* x, int64_t base, Space kept, Space red) {
  using A = Acc<OP>;
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < kept.size; p += (int64_t)gridDim.x * blockDim.x) {
    const TI* row = x + base + space_offset(kept, p);
    typename A::T acc = A::init();
    for (int64_t r = 0; r < red.size; r++) acc = A::merge(acc, (typename A::T)cu::ld(row, space_offset(red, r)));
    cu::st(o, p, (float)acc);
  }
}

// One block per output: long reductions. Threads take strided elements, then a fixed shared-memory tree.
template <int OP, class TO, class TI>
__global__ void reduce_block_kernel(TO* o, const TI* x, int64_t base, Space kept, Space red) {
  using A = Acc<OP>;
  using T = typename A::T;
  __shared__ T part[cu::kThreads];
  for (int64_t p = blockIdx.x; p < kept.size; p += gridDim.x) {
    const TI* row = x + base + space_offset(kept, p);
    T acc = A::init();
    if (red.nd == 1) {
      const int64_t st = red.st[0];
      for (int64_t r = threadIdx.x; r < red.size; r += blockDim.x) acc = A::merge(acc, (T)cu::ld(row, r * st));
    } else {
      for (int64_t r = threadIdx.x; r < red.size; r += blockDim.x) acc = A::merge(acc, (T)cu::ld(row, space_offset(red, r)));
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if ((int)threadIdx.x < s) part[threadIdx.x] = A::merge(part[threadIdx.x], part[threadIdx.x + s]);
      __syncthreads();
    }
    if (threadIdx.x == 0) cu::st(o, p, (float)part[0]);
    __syncthreads();
  }
}

template <int OP, class TO, class TI>
void reduce_impl(const View& out, const View& a, const bool* red, const char* k) {
  Space kept, rsp;
  for (int d = 0; d < a.ndim; d++) {
    if (a.shape[d] == 1) continue;
    Space& s = red[d] ? rsp : kept;
    if (s.nd > 0 && s.st[s.nd - 1] == a.strides[d] * a.shape[d]) {
      s.shape[s.nd - 1] *= a.shape[d];
      s.st[s.nd - 1] = a.strides[d];
    } else {
      s.shape[s.nd] = a.shape[d];
      s.st[s.nd] = a.strides[d];
      s.nd++;
    }
    s.size *= a.shape[d];
  }
  if (kept.size == 0) return;
  TO* o = cu::at<TO>(out);
  const TI* x = static_cast<const TI*>(a.base);
  if (rsp.size == 0) {  // an empty reduction: the identity (0, −∞, +∞)
    fill(out, OP == R_SUM ? 0.0 : OP == R_MAX ? -INFINITY : INFINITY);
    return;
  }
  if (rsp.size < 64) {
    reduce_thread_kernel<OP, TO, TI><<<cu::grid_for(kept.size), cu::kThreads, 0, cu::stream()>>>(o, x, a.offset, kept, rsp);
  } else {
    const int64_t blocks = kept.size < (int64_t)cu::sm_count() * 64 ? kept.size : (int64_t)cu::sm_count() * 64;
    reduce_block_kernel<OP, TO, TI><<<(unsigned)blocks, cu::kThreads, 0, cu::stream()>>>(o, x, a.offset, kept, rsp);
  }
  cu::launched(k);
}

// ---- argmax / topk: (value, index) pairs in the order "NaN first, then larger values, ties by the
// lower index" (the CPU backend's argmax and topk order) ------------------------------------------

__device__ inline bool before(float v1, int i1, float v2, int i2) {
  const bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 != n2) return n1;
  if (!n1 && v1 != v2) return v1 > v2;
  return i1 < i2;
}

// Block-wide best pair (every thread gets it). i = −1 stands for "none".
__device__ inline void block_best(float& v, int& i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_down_sync(0xffffffffu, v, o);
    const int oi = __shfl_down_sync(0xffffffffu, i, o);
    if (oi >= 0 && (i < 0 || before(ov, oi, v, i))) {
      v = ov;
      i = oi;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x / 32;
    v = lane < nw ? sv[lane] : 0.f;
    i = lane < nw ? si[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_down_sync(0xffffffffu, v, o);
      const int oi = __shfl_down_sync(0xffffffffu, i, o);
      if (oi >= 0 && (i < 0 || before(ov, oi, v, i))) {
        v = ov;
        i = oi;
      }
    }
    if (lane == 0) {
      sv[0] = v;
      si[0] = i;
    }
  }
  __syncthreads();
  v = sv[0];
  i = si[0];
  __syncthreads();
}

template <class TI>
__global__ void argmax_kernel(int32_t* o, const TI* x, int64_t rows, int n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const TI* row = x + r * n;
    float v = 0.f;
    int i = -1;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      const float xj = cu::ld(row, j);
      if (i < 0 || before(xj, j, v, i)) {
        v = xj;
        i = j;
      }
    }
    block_best(v, i);
    if (threadIdx.x == 0) o[r] = i;
  }
}

// Pass t picks the best element that comes after pick t−1 in the order: k passes over the row.
template <class TV, class TI>
__global__ void topk_kernel(TV* vo, int32_t* io, const TI* x, int64_t rows, int n, int k) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const TI* row = x + r * n;
    float pv = 0.f;
    int pi = -1;
    for (int t = 0; t < k; t++) {
      float v = 0.f;
      int i = -1;
      for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float xj = cu::ld(row, j);
        if (pi >= 0 && !before(pv, pi, xj, j)) continue;
        if (i < 0 || before(xj, j, v, i)) {
          v = xj;
          i = j;
        }
      }
      block_best(v, i);
      if (threadIdx.x == 0) {
        cu::st(vo, r * k + t, v);
        io[r * k + t] = i;
      }
      pv = v;
      pi = i;
    }
  }
}

unsigned row_blocks(int64_t r) {
  const int64_t cap = (int64_t)cu::sm_count() * 16;
  return (unsigned)(r < cap ? r : cap);
}

}  // namespace

void reduce(int op, const View& out, const View& a, const int* axes, int naxes) {
  if (op < 0 || op >= R_COUNT) fail("reduce", "unknown op code %d", op);
  char k[32];
  std::snprintf(k, sizeof k, "reduce %s", kReduceNames[op]);
  need_float(k, "input", a);
  need_float_contig(k, "output", out);
  if (out.ndim != a.ndim) fail(k, "output rank %d differs from input rank %d", out.ndim, a.ndim);
  bool red[kMaxDims] = {};
  for (int i = 0; i < naxes; i++) {
    if (axes[i] < 0 || axes[i] >= a.ndim) fail(k, "axis %d is out of range for rank %d", axes[i], a.ndim);
    red[axes[i]] = true;
  }
  for (int d = 0; d < a.ndim; d++)
    if ((red[d] && out.shape[d] != 1) || (!red[d] && out.shape[d] != a.shape[d]))
      fail(k, "output shape %s does not fit input %s over the reduced axes", out.shape_str().c_str(), a.shape_str().c_str());
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(a.dtype, [&](auto ti) {
      using TO = decltype(to);
      using TI = decltype(ti);
      switch (op) {
        case R_SUM: return reduce_impl<R_SUM, TO, TI>(out, a, red, k);
        case R_MAX: return reduce_impl<R_MAX, TO, TI>(out, a, red, k);
        default: return reduce_impl<R_MIN, TO, TI>(out, a, red, k);
      }
    });
  });
}

void argmax(const View& out, const View& a) {
  const char* k = "argmax";
  need_float_contig(k, "input", a);
  need_dtype(k, "output", out, DType::I32);
  need_contig(k, "output", out);
  int64_t r, n;
  rows_of(a, r, n);
  if (n == 0) fail(k, "empty rows have no maximum");
  if (n > 2147483647) fail(k, "rows longer than 2^31 are not supported (i32 indices)");
  need_numel(k, "output", out, r);
  if (r == 0) return;
  cu::with_float(a.dtype, [&](auto ti) {
    using TI = decltype(ti);
    argmax_kernel<TI><<<row_blocks(r), cu::kThreads, 0, cu::stream()>>>(out.ptr<int32_t>(), cu::at<const TI>(a), r, (int)n);
  });
  cu::launched(k);
}

void topk(const View& values, const View& indices, const View& a, int64_t kk) {
  const char* k = "topk";
  need_float_contig(k, "input", a);
  need_float_contig(k, "values", values);
  need_dtype(k, "indices", indices, DType::I32);
  need_contig(k, "indices", indices);
  int64_t r, n;
  rows_of(a, r, n);
  if (kk < 0 || kk > n) fail(k, "k = %lld is out of range for rows of %lld", (long long)kk, (long long)n);
  if (n > 2147483647) fail(k, "rows longer than 2^31 are not supported");
  need_numel(k, "values", values, r * kk);
  need_numel(k, "indices", indices, r * kk);
  if (kk == 0 || r == 0) return;
  cu::with_float(values.dtype, [&](auto tv) {
    cu::with_float(a.dtype, [&](auto ti) {
      using TV = decltype(tv);
      using TI = decltype(ti);
      topk_kernel<TV, TI><<<row_blocks(r), cu::kThreads, 0, cu::stream()>>>(cu::at<TV>(values), indices.ptr<int32_t>(),
                                                                           cu::at<const TI>(a), r, (int)n, (int)kk);
    });
  });
  cu::launched(k);
}

}  // namespace vera
