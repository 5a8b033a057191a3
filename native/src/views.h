// Strided-view iteration shared by the elementwise kernels: walks a Layout (layout.h: K views aligned
// on one shape, dense dimensions merged) in parallel inner runs, and OpenMP loop helpers.
#pragma once

#include <algorithm>

#include "common.h"
#include "layout.h"

namespace vera {

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
