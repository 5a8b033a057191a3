// Softmax and log-softmax over the last axis of contiguous [R, N] views, and their backward: the CUDA
// twin of native/src/softmax.cc. One warp per row for rows up to kWarpRowMax long (8 rows per block),
// else one block per row (256..1024 threads). Each row is max → exp-sum → write, the max in f32, the
// sums in double as the CPU kernel keeps them; every reduction runs in a fixed order (per-thread
// strided loop, xor butterfly, then the warps' partials in index order), so results are bit-identical
// run to run. exp is CUDA's expf (the CPU kernel's vexp is a ~1 ulp polynomial of the same f32 argument).
#include <climits>

#include "device.cuh"
#include "kernels.h"

namespace vera {

namespace {

// ---- row groups (the same scheme in softmax.cu, norm.cu and loss.cu) --------------------------
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

// ---- kernels ------------------------------------------------------------------------------------

template <bool kBlock>
__global__ void __launch_bounds__(1024) softmax_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t r,
                                                       int64_t n, bool log) {
  using G = Row<kBlock>;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;  // a whole warp leaves; block mode has exactly r blocks
  const float* xr = x + i * n;
  float* yr = y + i * n;
  const int lane = G::lane(), step = G::size();
  float m = -INFINITY;
  for (int64_t j = lane; j < n; j += step) m = fmaxf(m, xr[j]);
  m = G::reduce(m, MaxOp());
  double sum = 0;  // double: log-softmax of the largest entries depends on its low bits
  for (int64_t j = lane; j < n; j += step) sum += (double)expf(xr[j] - m);
  sum = G::reduce(sum, SumOp());
  if (log) {
    const double lse = (double)m + ::log(sum);
    for (int64_t j = lane; j < n; j += step) yr[j] = (float)((double)xr[j] - lse);
  } else {
    const float inv = (float)(1.0 / sum);
    for (int64_t j = lane; j < n; j += step) yr[j] = expf(xr[j] - m) * inv;
  }
}

template <bool kBlock>
__global__ void __launch_bounds__(1024) softmax_backward_kernel(float* __restrict__ dx, const float* __restrict__ y,
                                                                const float* __restrict__ dy, int64_t r, int64_t n,
                                                                bool log) {
  using G = Row<kBlock>;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;
  const float* yr = y + i * n;
  const float* gr = dy + i * n;
  float* dr = dx + i * n;
  const int lane = G::lane(), step = G::size();
  double s = 0;
  if (log) {
    for (int64_t j = lane; j < n; j += step) s += (double)gr[j];
  } else {
    for (int64_t j = lane; j < n; j += step) s += (double)gr[j] * (double)yr[j];
  }
  const float sf = (float)G::reduce(s, SumOp());
  if (log) {
    for (int64_t j = lane; j < n; j += step) dr[j] = gr[j] - expf(yr[j]) * sf;
  } else {
    for (int64_t j = lane; j < n; j += step) dr[j] = yr[j] * (gr[j] - sf);
  }
}

void check_rows(const char* k, const View& out, const View& a, const char* oname, const char* aname) {
  need_f32_contig(k, oname, out);
  need_f32_contig(k, aname, a);
  need_same_shape(k, oname, out, a);
}

}  // namespace

void softmax(const View& out, const View& a, bool log) {
  const char* k = "softmax";
  check_rows(k, out, a, "output", "input");
  int64_t r, n;
  rows_of(a, r, n);
  launch_rows(k, r, n, softmax_kernel<false>, softmax_kernel<true>, out.f(), (const float*)a.f(), r, n, log);
}

void softmax_backward(const View& dx, const View& y, const View& dy, bool log) {
  const char* k = "softmaxBackward";
  check_rows(k, dx, y, "dx", "y");
  check_rows(k, dy, y, "dy", "y");
  int64_t r, n;
  rows_of(y, r, n);
  launch_rows(k, r, n, softmax_backward_kernel<false>, softmax_backward_kernel<true>, dx.f(), (const float*)y.f(),
              (const float*)dy.f(), r, n, log);
}

}  // namespace vera
