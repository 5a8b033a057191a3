// K strided views aligned on one shape with the dimensions that are dense in all of them merged, so a
// contiguous tensor becomes 1-D. Pure host code: the CPU kernels walk it (views.h), the CUDA kernels
// get it by value and index through it.
#pragma once

#include <algorithm>
#include <cstdint>

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

}  // namespace vera
