// Softmax and log-softmax over the last axis of contiguous [R, N] views, and their backward: the CUDA
// twin of native/src/softmax.cc. One warp per row for rows up to kWarpRowMax long (8 rows per block),
// else one block per row (256..1024 threads). Each row is max → exp-sum → write, the max in f32, the
// sums in double as the CPU kernel keeps them; every reduction runs in a fixed order (per-thread
// strided loop, xor butterfly, then the warps' partials in index order), so results are bit-identical
// run to run. exp is CUDA's expf (the CPU kernel's vexp is a ~1 ulp polynomial of the same f32 argument).
#include <climits>

#include "device.cuh"
#include "kernels.h"
#include "rows.cuh"

namespace vera {

namespace {

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
