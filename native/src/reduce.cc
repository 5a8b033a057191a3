// Reductions: sum/max/min over any set of axes of a strided view (sums accumulate in double, like the
// js backend), argmax and top-k over rows. Dims are merged and split into kept and reduced groups;
// an innermost reduced dim gives dense row reductions, an innermost kept dim gives column reductions
// (bias gradients) that stream whole rows into per-thread accumulators.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels.h"
#include "views.h"

namespace vera {


namespace {

// An index space of merged dims with one stride per dim (in elements of the input).
struct Space {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t st[kMaxDims];
  int64_t size = 1;
  int64_t offset_of(int64_t flat) const {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
      off += (flat % shape[d]) * st[d];
      flat /= shape[d];
    }
    return off;
  }
};

// f(n, off, stride) for runs along the innermost dim of `s` covering flat indices [lo, hi).
template <class F>
void space_runs(const Space& s, int64_t lo, int64_t hi, F&& f) {
  if (s.nd == 0) {
    if (lo < hi) f((int64_t)1, (int64_t)0, (int64_t)1);
    return;
  }
  const int last = s.nd - 1;
  int64_t idx[kMaxDims];
  int64_t rem = lo, off = 0;
  for (int d = last; d >= 0; d--) {
    idx[d] = rem % s.shape[d];
    rem /= s.shape[d];
    off += idx[d] * s.st[d];
  }
  int64_t i = lo;
  while (i < hi) {
    const int64_t n = std::min(s.shape[last] - idx[last], hi - i);
    f(n, off, s.st[last]);
    i += n;
    if (i >= hi) break;
    idx[last] += n;
    off += n * s.st[last];
    for (int d = last; d > 0 && idx[d] == s.shape[d]; d--) {
      off += s.st[d - 1] - s.shape[d] * s.st[d];
      idx[d] = 0;
      idx[d - 1]++;
    }
  }
}

template <int OP>
struct Acc {
  using T = std::conditional_t<OP == R_SUM, double, float>;
  static T init() { return OP == R_SUM ? 0.0 : OP == R_MAX ? -INFINITY : INFINITY; }
  // NaN wins, as in the js backend.
  static T add(T acc, float x) {
    if constexpr (OP == R_SUM) return acc + (double)x;
    else if constexpr (OP == R_MAX) return (x > acc || x != x) ? x : acc;
    else return (x < acc || x != x) ? x : acc;
  }
  static T merge(T a, T b) {
    if constexpr (OP == R_SUM) return a + b;
    else if constexpr (OP == R_MAX) return (b > a || b != b) ? b : a;
    else return (b < a || b != b) ? b : a;
  }
};

// Reduces a run of n elements (stride st) into acc, vectorised when dense.
template <int OP>
inline typename Acc<OP>::T reduce_run(const float* p, int64_t n, int64_t st, typename Acc<OP>::T acc) {
  using A = Acc<OP>;
  if (st == 1) {
    if constexpr (OP == R_SUM) {
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; i++) s += (double)p[i];
      return acc + s;
    } else {
      // Lanes of partial results; NaN-propagating compare-select vectorises.
      constexpr int W = 16;
      float lanes[W];
      for (int l = 0; l < W; l++) lanes[l] = A::init();
      int64_t i = 0;
      for (; i + W <= n; i += W) {
#pragma omp simd
        for (int l = 0; l < W; l++) lanes[l] = A::add(lanes[l], p[i + l]);
      }
      for (; i < n; i++) acc = A::add(acc, p[i]);
      for (int l = 0; l < W; l++) acc = A::merge(acc, lanes[l]);
      return acc;
    }
  }
  for (int64_t i = 0; i < n; i++) acc = A::add(acc, p[i * st]);
  return acc;
}

template <int OP>
void reduce_impl(const View& out, const View& a, const bool* red) {
  using A = Acc<OP>;
  using T = typename A::T;
  // Kept and reduced dims (size-1 dims dropped), each group merged where dense.
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
  const float* x = static_cast<const float*>(a.base);
  float* o = out.f();
  const int64_t P = kept.size, Q = rsp.size;
  if (P == 0) return;
  if (Q == 0) {  // empty reduction
    for (int64_t p = 0; p < P; p++) o[p] = (float)A::init();
    return;
  }
  int last = -1;  // is the innermost non-unit dim kept?
  for (int d = a.ndim - 1; d >= 0; d--)
    if (a.shape[d] != 1) {
      last = d;
      break;
    }
  const int nt = max_threads();
  const int64_t total = P * Q;

  if (last >= 0 && !red[last] && kept.nd > 0) {
    // Column reduction: out[po, j] = reduce over q of a[po, q, j], j the innermost kept dim.
    const int64_t J = kept.shape[kept.nd - 1], sj = kept.st[kept.nd - 1];
    Space outer = kept;
    outer.nd--;
    outer.size = P / J;
    const int64_t PO = outer.size;
    constexpr int64_t kChunk = 1024;
    const int64_t nchunks = (J + kChunk - 1) / kChunk;
    const int64_t items = PO * nchunks;
    // Split the reduction itself when the kept work cannot occupy the threads.
    const int S = (total >= 2 * kGrainCheap && items < 2 * nt) ? (int)std::min<int64_t>(nt, Q) : 1;
    std::vector<T> partial(S > 1 ? (size_t)S * P : 0);
    const int64_t grain_items = std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(1, Q * std::min(J, kChunk)));
    auto work = [&](int64_t item, int s) {
      const int64_t po = item / nchunks, c = item % nchunks;
      const int64_t j0 = c * kChunk, j1 = std::min(J, j0 + kChunk), nj = j1 - j0;
      T acc[kChunk];
      for (int64_t j = 0; j < nj; j++) acc[j] = A::init();
      const float* base = x + a.offset + outer.offset_of(po) + j0 * sj;
      int64_t lo = 0, hi = Q;
      if (S > 1) split_range(Q, S, s, lo, hi);
      space_runs(rsp, lo, hi, [&](int64_t n, int64_t off, int64_t st) {
        for (int64_t t = 0; t < n; t++) {
          const float* row = base + off + t * st;
          if (sj == 1) {
#pragma omp simd
            for (int64_t j = 0; j < nj; j++) acc[j] = A::add(acc[j], row[j]);
          } else {
            for (int64_t j = 0; j < nj; j++) acc[j] = A::add(acc[j], row[j * sj]);
          }
        }
      });
      if (S > 1) {
        T* dst = partial.data() + (size_t)s * P + po * J + j0;
        for (int64_t j = 0; j < nj; j++) dst[j] = acc[j];
      } else {
        float* dst = o + po * J + j0;
        for (int64_t j = 0; j < nj; j++) dst[j] = (float)acc[j];
      }
    };
    if (S > 1) {
#pragma omp parallel for num_threads(S) schedule(static) collapse(2)
      for (int s = 0; s < S; s++)
        for (int64_t it = 0; it < items; it++) work(it, s);
      parallel_blocks(P, kGrainCheap, [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; p++) {
          T acc = partial[p];
          for (int s = 1; s < S; s++) acc = A::merge(acc, partial[(size_t)s * P + p]);
          o[p] = (float)acc;
        }
      });
    } else {
      parallel_blocks(items, grain_items, [&](int64_t lo, int64_t hi) {
        for (int64_t it = lo; it < hi; it++) work(it, 0);
      });
    }
    return;
  }

  // Row reduction: each output element reduces its own slice; the innermost reduced dim is the run.
  const int S = (P < 2 * nt && total >= 2 * kGrainCheap) ? (int)std::min<int64_t>(nt, Q) : 1;
  if (S == 1) {
    const int64_t grain_rows = std::max<int64_t>(1, kGrainCheap / Q);
    parallel_blocks(P, grain_rows, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; p++) {
        const float* base = x + a.offset + kept.offset_of(p);
        T acc = A::init();
        space_runs(rsp, 0, Q, [&](int64_t n, int64_t off, int64_t st) { acc = reduce_run<OP>(base + off, n, st, acc); });
        o[p] = (float)acc;
      }
    });
    return;
  }
  std::vector<T> partial((size_t)S * P);
#pragma omp parallel for num_threads(S) schedule(static) collapse(2)
  for (int s = 0; s < S; s++) {
    for (int64_t p = 0; p < P; p++) {
      const float* base = x + a.offset + kept.offset_of(p);
      int64_t lo, hi;
      split_range(Q, S, s, lo, hi);
      T acc = A::init();
      space_runs(rsp, lo, hi, [&](int64_t n, int64_t off, int64_t st) { acc = reduce_run<OP>(base + off, n, st, acc); });
      partial[(size_t)s * P + p] = acc;
    }
  }
  for (int64_t p = 0; p < P; p++) {
    T acc = partial[p];
    for (int s = 1; s < S; s++) acc = A::merge(acc, partial[(size_t)s * P + p]);
    o[p] = (float)acc;
  }
}

}  // namespace

void reduce(int op, const View& out, const View& a, const int* axes, int naxes) {
  if (op < 0 || op >= R_COUNT) fail("reduce", "unknown op code %d", op);
  char k[32];
  std::snprintf(k, sizeof k, "reduce %s", kReduceNames[op]);
  need_f32(k, "input", a);
  need_f32_contig(k, "output", out);
  if (out.ndim != a.ndim) fail(k, "output rank %d differs from input rank %d", out.ndim, a.ndim);
  bool red[kMaxDims] = {};
  for (int i = 0; i < naxes; i++) {
    if (axes[i] < 0 || axes[i] >= a.ndim) fail(k, "axis %d is out of range for rank %d", axes[i], a.ndim);
    red[axes[i]] = true;
  }
  for (int d = 0; d < a.ndim; d++)
    if ((red[d] && out.shape[d] != 1) || (!red[d] && out.shape[d] != a.shape[d]))
      fail(k, "output shape %s does not fit input %s over the reduced axes", out.shape_str().c_str(), a.shape_str().c_str());
  switch (op) {
    case R_SUM: return reduce_impl<R_SUM>(out, a, red);
    case R_MAX: return reduce_impl<R_MAX>(out, a, red);
    default: return reduce_impl<R_MIN>(out, a, red);
  }
}

void argmax(const View& out, const View& a) {
  const char* k = "argmax";
  need_f32_contig(k, "input", a);
  need_dtype(k, "output", out, DType::I32);
  need_contig(k, "output", out);
  int64_t r, n;
  rows_of(a, r, n);
  if (n == 0) fail(k, "empty rows have no maximum");
  if (n > 2147483647) fail(k, "rows longer than 2^31 are not supported (i32 indices)");
  need_numel(k, "output", out, r);
  const float* x = a.f();
  int32_t* o = out.ptr<int32_t>();
  parallel_rows(r, n, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* row = x + i * n;
      int64_t best = 0;
      float bv = row[0];
      if (bv == bv) {
        for (int64_t j = 1; j < n; j++) {
          const float v = row[j];
          if (v > bv || v != v) {
            bv = v;
            best = j;
            if (v != v) break;
          }
        }
      }
      o[i] = (int32_t)best;
    }
  });
}

void topk(const View& values, const View& indices, const View& a, int64_t kk) {
  const char* k = "topk";
  need_f32_contig(k, "input", a);
  need_f32_contig(k, "values", values);
  need_dtype(k, "indices", indices, DType::I32);
  need_contig(k, "indices", indices);
  int64_t r, n;
  rows_of(a, r, n);
  if (kk < 0 || kk > n) fail(k, "k = %lld is out of range for rows of %lld", (long long)kk, (long long)n);
  if (n > 2147483647) fail(k, "rows longer than 2^31 are not supported");
  need_numel(k, "values", values, r * kk);
  need_numel(k, "indices", indices, r * kk);
  if (kk == 0 || r == 0) return;
  const float* x = a.f();
  float* vo = values.f();
  int32_t* io = indices.ptr<int32_t>();
  parallel_rows(r, n * 4, kGrainCheap, [&](int64_t lo, int64_t hi) {
    std::vector<int32_t> order((size_t)n);
    for (int64_t i = lo; i < hi; i++) {
      const float* row = x + i * n;
      // NaN first, then descending values, ties by lower index: a strict weak order.
      auto before = [row](int32_t p, int32_t q) {
        const float vp = row[p], vq = row[q];
        const bool np = vp != vp, nq = vq != vq;
        if (np != nq) return np;
        if (!np && vp != vq) return vp > vq;
        return p < q;
      };
      std::iota(order.begin(), order.end(), 0);
      if (kk < n) std::partial_sort(order.begin(), order.begin() + kk, order.end(), before);
      else std::sort(order.begin(), order.end(), before);
      for (int64_t j = 0; j < kk; j++) {
        vo[i * kk + j] = row[order[j]];
        io[i * kk + j] = order[j];
      }
    }
  });
}

}  // namespace vera
