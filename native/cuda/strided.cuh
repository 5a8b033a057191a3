// Strided views on the device: a Layout<K> (native/src/layout.h: K views aligned on the output's
// shape, dense dimensions merged, so contiguous tensors are 1-D) is passed to kernels by value, and
// each thread turns its flat output index into one element offset per view.
#pragma once

#include "../src/layout.h"
#include "device.cuh"

namespace vera {
namespace cu {

// Element offsets in each of the K views of flat index i (row-major over L.shape).
template <int K>
__device__ inline void layout_offsets(const Layout<K>& L, int64_t i, int64_t (&o)[K]) {
#pragma unroll
  for (int k = 0; k < K; k++) o[k] = L.off[k];
  if (L.ndim == 1) {
#pragma unroll
    for (int k = 0; k < K; k++) o[k] += i * L.st[k][0];
    return;
  }
  if (L.numel <= 0x7fffffff) {
    // 32-bit quotients: a 64-bit division is a long emulated sequence, and it ran per element and dim.
    uint32_t j = (uint32_t)i;
    for (int d = L.ndim - 1; d >= 0; d--) {
      const uint32_t n = (uint32_t)L.shape[d];
      const uint32_t q = j / n;
      const int64_t idx = j - q * n;
      j = q;
#pragma unroll
      for (int k = 0; k < K; k++) o[k] += idx * L.st[k][d];
    }
    return;
  }
  for (int d = L.ndim - 1; d >= 0; d--) {
    const int64_t n = L.shape[d];
    const int64_t idx = i % n;
    i /= n;
#pragma unroll
    for (int k = 0; k < K; k++) o[k] += idx * L.st[k][d];
  }
}

// Grid-stride loop over the layout's elements: f(o) with o the K element offsets.
#define VERA_FOR_EACH(L, K, o, ...)                                                               \
  for (int64_t vera_i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; vera_i < (L).numel;         \
       vera_i += (int64_t)gridDim.x * blockDim.x) {                                                \
    int64_t o[K];                                                                                   \
    layout_offsets<K>((L), vera_i, o);                                                              \
    __VA_ARGS__                                                                                     \
  }

}  // namespace cu
}  // namespace vera
