// Cross-entropy over contiguous logits [N, V] with i32 targets, ignore_index and label smoothing
// (torch's definition), forward (loss and saved log-sum-exp per row) and backward: the CUDA twin of
// native/src/loss.cc. One warp per row for V up to kWarpRowMax, else one block per row (1024 threads
// for vocab-sized rows). The forward is max, then the exp-sum (and, with smoothing, the plain sum) in
// double, in a fixed order. Targets live on the device, so they are checked in the kernels: a target
// outside [0, V) that is not ignore_index is reported through cu::report_bad (thrown by the host at
// the next sync) and that row's outputs are written as 0, without reading logits out of range.
#include <climits>

#include "device.cuh"
#include "kernels.h"
#include "rows.cuh"

namespace vera {

namespace {

// ---- kernels ------------------------------------------------------------------------------------

// The row's target, or -1 when ignored, or -2 when out of range (reported once per row, by lane 0).
__device__ inline int64_t row_target(const int32_t* targets, int64_t i, int64_t v, int64_t ignore_index,
                                     cu::DeviceError* err, int kernel, int lane) {
  const int32_t t = targets[i];
  if ((int64_t)t == ignore_index) return -1;
  if (t < 0 || (int64_t)t >= v) {
    if (lane == 0) cu::report_bad(err, kernel, t, i, v);
    return -2;
  }
  return t;
}

template <bool kBlock>
__global__ void __launch_bounds__(1024)
    cross_entropy_kernel(float* __restrict__ loss, float* __restrict__ lse, const float* __restrict__ logits,
                         const int32_t* __restrict__ targets, int64_t n, int64_t v, int64_t ignore_index,
                         double eps, cu::DeviceError* err) {
  using G = Row<kBlock>;
  const int64_t i = G::index();
  if (!kBlock && i >= n) return;
  const int lane = G::lane(), step = G::size();
  const int64_t t = row_target(targets, i, v, ignore_index, err, cu::EK_CROSS_ENTROPY, lane);
  if (t == -2) {  // uniform over the row's lanes: the whole group leaves
    if (lane == 0) loss[i] = lse[i] = 0;
    return;
  }
  const float* xr = logits + i * v;
  float m = -INFINITY;
  for (int64_t j = lane; j < v; j += step) m = fmaxf(m, xr[j]);
  m = G::reduce(m, MaxOp());
  double sum = 0, sumx = 0;
  if (eps > 0) {
    for (int64_t j = lane; j < v; j += step) {
      const float xj = xr[j];
      sum += (double)expf(xj - m);
      sumx += (double)xj;
    }
    sumx = G::reduce(sumx, SumOp());
  } else {
    for (int64_t j = lane; j < v; j += step) sum += (double)expf(xr[j] - m);
  }
  sum = G::reduce(sum, SumOp());
  if (lane != 0) return;
  if (m == -INFINITY) sum = NAN;  // an all −inf row: NaN, like the js backend's exp(−inf − (−inf))
  const double l = (double)m + ::log(sum);
  lse[i] = (float)l;
  if (t < 0) {
    loss[i] = 0;
    return;
  }
  const double mean = eps > 0 ? sumx / (double)v : 0.0;
  loss[i] = (float)(l - (1 - eps) * (double)xr[t] - eps * mean);
}

template <bool kBlock>
__global__ void __launch_bounds__(1024)
    cross_entropy_backward_kernel(float* __restrict__ dlogits, const float* __restrict__ dloss,
                                  const float* __restrict__ logits, const float* __restrict__ lse,
                                  const int32_t* __restrict__ targets, int64_t n, int64_t v, int64_t ignore_index,
                                  float eps, float off, cu::DeviceError* err) {
  using G = Row<kBlock>;
  const int64_t i = G::index();
  if (!kBlock && i >= n) return;
  const int lane = G::lane(), step = G::size();
  const int64_t t = row_target(targets, i, v, ignore_index, err, cu::EK_CROSS_ENTROPY_BACKWARD, lane);
  float* gr = dlogits + i * v;
  if (t < 0) {  // ignored, or out of range (reported)
    for (int64_t j = lane; j < v; j += step) gr[j] = 0;
    return;
  }
  const float* xr = logits + i * v;
  const float l = lse[i], s = dloss[i];
  const float qt = (1 - eps) + off;  // the target's share of the smoothed distribution
  for (int64_t j = lane; j < v; j += step) gr[j] = s * (expf(xr[j] - l) - (j == t ? qt : off));
}

struct CeDims {
  int64_t n, v;
};

// loss.cc's check_ce, less the target range check (the targets are on the device: see the kernels).
CeDims check_ce(const char* k, const View& logits, const View& targets) {
  need_f32_contig(k, "logits", logits);
  need_dtype(k, "targets", targets, DType::I32);
  need_contig(k, "targets", targets);
  CeDims d;
  rows_of(logits, d.n, d.v);
  if (logits.ndim == 0) d.n = 1;
  need_numel(k, "targets", targets, d.n);
  return d;
}

}  // namespace

void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore_index,
                   double label_smoothing) {
  const char* k = "crossEntropy";
  const CeDims d = check_ce(k, logits, targets);
  need_f32_contig(k, "loss", loss);
  need_f32_contig(k, "lse", lse);
  need_numel(k, "loss", loss, d.n);
  need_numel(k, "lse", lse, d.n);
  if (d.v == 0) return;  // no rows (rows_of)
  launch_rows(k, d.n, d.v, cross_entropy_kernel<false>, cross_entropy_kernel<true>, loss.f(), lse.f(),
              (const float*)logits.f(), (const int32_t*)targets.ptr<int32_t>(), d.n, d.v, ignore_index,
              label_smoothing, cu::device_error());
}

void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore_index, double label_smoothing) {
  const char* k = "crossEntropyBackward";
  const CeDims d = check_ce(k, logits, targets);
  need_f32_contig(k, "dlogits", dlogits);
  need_same_shape(k, "dlogits", dlogits, logits);
  need_f32_contig(k, "dloss", dloss);
  need_f32_contig(k, "lse", lse);
  need_numel(k, "dloss", dloss, d.n);
  need_numel(k, "lse", lse, d.n);
  if (d.v == 0) return;
  const float eps = (float)label_smoothing;
  const float off = (float)(label_smoothing / (double)d.v);
  launch_rows(k, d.n, d.v, cross_entropy_backward_kernel<false>, cross_entropy_backward_kernel<true>, dlogits.f(),
              (const float*)dloss.f(), (const float*)logits.f(), (const float*)lse.f(),
              (const int32_t*)targets.ptr<int32_t>(), d.n, d.v, ignore_index, eps, off, cu::device_error());
}

}  // namespace vera
