// Strided-view iteration shared by the elementwise kernels: aligns K views on one shape, merges
// dimensions that are contiguous in all of them, and walks the result in parallel inner runs.
#pragma once

#include <algorithm>

#include "common.h"

namespace vera {

template <int K>
struct Layout {
  int ndim = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {};
  int64_t st[K][kMaxDims] = {};
  int64_t off[K] = {};
};

// Views[0] (the output) defines the shape; the others must have the same shape, or be right-aligned
// with size-1 dims where they broadcast (their stride there becomes 0). Dims are ordered by the
// output's strides, size-1 dims are dropped and dims that are dense with respect to each other in
// every view are merged, so a contiguous tensor becomes 1-D.
template <int K>
Layout<K> make_layout(const char* kernel, const View* const (&v)[K]) {
  Layout<K> L;
  const View& o = *v[0];
  int64_t sh[kMaxDims];
  int64_t st[K][kMaxDims];
  for (int d = 0; d < o.ndim; d++) sh[d] = o.shape[d];
  for (int k = 0; k < K; k++) {
    const View& x = *v[k];
    int shift = o.ndim - x.ndim;
    if (shift < 0) fail(kernel, "operand %d has shape %s, which does not fit the output %s", k, x.shape_str().c_str(), o.shape_str().c_str());
    for (int d = 0; d < o.ndim; d++) {
      if (d < shift) {
        st[k][d] = 0;
        continue;
      }
      int64_t xs = x.shape[d - shift];
      if (xs == o.shape[d]) st[k][d] = x.strides[d - shift];
      else if (xs == 1) st[k][d] = 0;
      else fail(kernel, "operand %d has shape %s, which does not fit the output %s", k, x.shape_str().c_str(), o.shape_str().c_str());
    }
    L.off[k] = x.offset;
  }
  L.numel = o.numel();
  // Walk dims in decreasing stride of the output (a stable sort; the identity for a dense output), so
  // that an output that is a permuted view is still written along its dense dimension.
  int perm[kMaxDims];
  for (int d = 0; d < o.ndim; d++) perm[d] = d;
  for (int i = 1; i < o.ndim; i++)
    for (int j = i; j > 0 && st[0][perm[j - 1]] < st[0][perm[j]]; j--) std::swap(perm[j - 1], perm[j]);
  // Drop size-1 dims, then merge dim d into d+1 when every view steps over d as one run of d+1.
  int n = 0;
  for (int pi = 0; pi < o.ndim; pi++) {
    const int d = perm[pi];
    if (sh[d] == 1) continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < K; k++)
        if (L.st[k][n - 1] != st[k][d] * sh[d]) merge = false;
      if (merge) {
        L.shape[n - 1] *= sh[d];
        for (int k = 0; k < K; k++) L.st[k][n - 1] = st[k][d];
        continue;
      }
    }
    L.shape[n] = sh[d];
    for (int k = 0; k < K; k++) L.st[k][n] = st[k][d];
    n++;
  }
  if (n == 0) {  // a scalar: one run of one element
    L.shape[0] = 1;
    for (int k = 0; k < K; k++) L.st[k][0] = 1;
    n = 1;
  }
  L.ndim = n;
  return L;
}

// Calls f(n, off, inner) for runs of n elements along the innermost merged dim: off[k] is the element
// offset of the run's first element in view k, inner[k] its stride along the run. The flat index range
// is split evenly across threads when there are at least 2·grain elements.
template <int K, class F>
void for_each_run(const Layout<K>& L, int64_t grain, F&& f) {
  const int64_t total = L.numel;
  if (total <= 0) return;
  const int last = L.ndim - 1;
  int64_t inner[K];
  for (int k = 0; k < K; k++) inner[k] = L.st[k][last];
  auto work = [&](int64_t lo, int64_t hi) {
    int64_t idx[kMaxDims];
    int64_t off[K];
    int64_t rem = lo;
    for (int d = last; d >= 0; d--) {
      idx[d] = rem % L.shape[d];
      rem /= L.shape[d];
    }
    for (int k = 0; k < K; k++) {
      off[k] = L.off[k];
      for (int d = 0; d <= last; d++) off[k] += idx[d] * L.st[k][d];
    }
    int64_t i = lo;
    while (i < hi) {
      int64_t n = std::min(L.shape[last] - idx[last], hi - i);
      f(n, (const int64_t*)off, (const int64_t*)inner);
      i += n;
      if (i >= hi) break;
      idx[last] += n;
      for (int k = 0; k < K; k++) off[k] += n * inner[k];
      for (int d = last; d > 0 && idx[d] == L.shape[d]; d--) {
        for (int k = 0; k < K; k++) off[k] += L.st[k][d - 1] - L.shape[d] * L.st[k][d];
        idx[d] = 0;
        idx[d - 1]++;
      }
    }
  };
  int64_t parts = total / std::max<int64_t>(grain, 1);
  int nt = (int)std::min<int64_t>(max_threads(), parts);
  if (nt <= 1) {
    work(0, total);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t lo, hi;
    split_range(total, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    if (lo < hi) work(lo, hi);
  }
}

// Parallel loop over [0, n) in contiguous blocks, one per thread; f(lo, hi). Serial below 2·grain.
template <class F>
void parallel_blocks(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t parts = n / std::max<int64_t>(grain, 1);
  int nt = (int)std::min<int64_t>(max_threads(), parts);
  if (nt <= 1) {
    f((int64_t)0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t lo, hi;
    split_range(n, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    if (lo < hi) f(lo, hi);
  }
}

// Parallel loop over rows [0, r) where each row costs about `per_row` element-operations.
template <class F>
void parallel_rows(int64_t r, int64_t per_row, int64_t grain, F&& f) {
  if (r <= 0) return;
  int64_t total = r * std::max<int64_t>(per_row, 1);
  int64_t parts = std::min<int64_t>(total / std::max<int64_t>(grain, 1), r);
  int nt = (int)std::min<int64_t>(max_threads(), parts);
  if (nt <= 1) {
    f((int64_t)0, r);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t lo, hi;
    split_range(r, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
    if (lo < hi) f(lo, hi);
  }
}

}  // namespace vera
