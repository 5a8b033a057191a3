// Row kernels' shared scheme (softmax.cu, norm.cu, loss.cu): one warp per row for rows up to
// kWarpRowMax long (8 rows per 256-thread block), else one block per row (256..1024 threads by
// length); Row<kBlock> gives a thread its row and lane and reduces over the row's lanes in a fixed
// order, so results are bit-identical run to run; launch_rows picks the variant.
#pragma once

#include <climits>

#include "device.cuh"

namespace vera {

constexpr int64_t kWarpRowMax = 1024;  // rows up to this long get one warp each
constexpr int kWarpBlock = 256;        // threads of a warp-per-row block: 8 rows
constexpr int kRowsPerWarpBlock = kWarpBlock / 32;

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// The lanes of a row: a warp (kBlock false) or the whole block (kBlock true).
template <bool kBlock>
struct Row {
  __device__ static int64_t index() {
    return kBlock ? (int64_t)blockIdx.x : (int64_t)blockIdx.x * kRowsPerWarpBlock + (threadIdx.x >> 5);
  }
  __device__ static int lane() { return kBlock ? (int)threadIdx.x : (int)(threadIdx.x & 31); }
  __device__ static int size() { return kBlock ? (int)blockDim.x : 32; }
  // op over the row's lanes, the same value in every lane. Fixed order: xor butterfly in each warp,
  // lane 0's value broadcast (so a non-commutative op, fmaxf on ±0, cannot make lanes disagree),
  // then every thread folds the warps' values in index order. Called by every thread of the block.
  template <class T, class Op>
  __device__ static T reduce(T v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    v = __shfl_sync(0xffffffffu, v, 0);
    if constexpr (kBlock) {
      __shared__ T sh[32];
      __syncthreads();  // the previous reduce's readers are done with sh
      if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
      __syncthreads();
      v = sh[0];
      for (int w = 1; w < (int)(blockDim.x >> 5); w++) v = op(v, sh[w]);
    }
    return v;
  }
};

inline int block_threads(int64_t n) { return n >= 16384 ? 1024 : n >= 4096 ? 512 : 256; }

// Launches warp<<<...>>> or block<<<...>>> over r rows of n elements.
template <class... P, class... A>
void launch_rows(const char* k, int64_t r, int64_t n, void (*warp)(P...), void (*block)(P...), A... args) {
  if (r <= 0) return;
  if (n <= kWarpRowMax) {
    const int64_t blocks = (r + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock;
    if (blocks > INT_MAX) fail(k, "too many rows (%lld)", (long long)r);
    warp<<<(unsigned)blocks, kWarpBlock, 0, cu::stream()>>>(args...);
  } else {
    if (r > INT_MAX) fail(k, "too many rows (%lld)", (long long)r);
    block<<<(unsigned)r, block_threads(n), 0, cu::stream()>>>(args...);
  }
  cu::launched(k);
}

}  // namespace vera
