// Cross-entropy over contiguous logits [N, V] with i32 targets, ignore_index and label smoothing
// (torch's definition), forward (loss and saved log-sum-exp per row) and backward. Rows run in
// parallel; the exp-sum accumulates in double.
#include <algorithm>
#include <cmath>

#include "kernels.h"
#include "mathfun.h"
#include "views.h"

namespace vera {

namespace {

constexpr int64_t kChunk = 2048;  // floats per chunk of the one-pass log-sum-exp (8 KB, stays in L1)

struct CeDims {
  int64_t n, v;
};

CeDims check_ce(const char* k, const View& logits, const View& targets, int64_t ignore_index) {
  need_f32_contig(k, "logits", logits);
  need_dtype(k, "targets", targets, DType::I32);
  need_contig(k, "targets", targets);
  CeDims d;
  rows_of(logits, d.n, d.v);
  if (logits.ndim == 0) d.n = 1;
  need_numel(k, "targets", targets, d.n);
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < d.n; i++)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= d.v))
      fail(k, "target %d at row %lld is out of range for %lld classes", t[i], (long long)i, (long long)d.v);
  return d;
}

}  // namespace

void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore_index,
                   double label_smoothing) {
  const char* k = "crossEntropy";
  const CeDims d = check_ce(k, logits, targets, ignore_index);
  need_f32_contig(k, "loss", loss);
  need_f32_contig(k, "lse", lse);
  need_numel(k, "loss", loss, d.n);
  need_numel(k, "lse", lse, d.n);
  const int64_t v = d.v;
  const float* x = logits.f();
  const int32_t* t = targets.ptr<int32_t>();
  float* lp = loss.f();
  float* sp = lse.f();
  const double eps = label_smoothing;
  parallel_rows(d.n, v, kGrainHeavy, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = x + i * v;
      // One pass over the row (it streams from memory): per chunk, the max, then the exp-sum from L1,
      // with the running sum rescaled when the max grows (online log-sum-exp).
      float m = -INFINITY;
      double sum = 0, sumx = 0;
      for (int64_t c0 = 0; c0 < v; c0 += kChunk) {
        const int64_t c1 = std::min(v, c0 + kChunk);
        float cm = -INFINITY;
#pragma omp simd reduction(max : cm)
        for (int64_t j = c0; j < c1; j++) cm = xr[j] > cm ? xr[j] : cm;
        if (cm > m) {
          if (sum > 0) sum *= std::exp((double)m - (double)cm);
          m = cm;
        }
        float cs = 0;
#pragma omp simd reduction(+ : cs)
        for (int64_t j = c0; j < c1; j++) cs += vexp(xr[j] - m);
        sum += cs;
        if (eps > 0) {
          float cx = 0;
#pragma omp simd reduction(+ : cx)
          for (int64_t j = c0; j < c1; j++) cx += xr[j];
          sumx += cx;
        }
      }
      if (m == -INFINITY) sum = NAN;  // an all −inf row: NaN, like the js backend's exp(−inf − (−inf))
      const double l = (double)m + std::log(sum);
      sp[i] = (float)l;
      if (t[i] == ignore_index) {
        lp[i] = 0;
        continue;
      }
      const double mean = eps > 0 ? sumx / (double)v : 0.0;
      lp[i] = (float)(l - (1 - eps) * (double)xr[t[i]] - eps * mean);
    }
  });
}

void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore_index, double label_smoothing) {
  const char* k = "crossEntropyBackward";
  const CeDims d = check_ce(k, logits, targets, ignore_index);
  need_f32_contig(k, "dlogits", dlogits);
  need_same_shape(k, "dlogits", dlogits, logits);
  need_f32_contig(k, "dloss", dloss);
  need_f32_contig(k, "lse", lse);
  need_numel(k, "dloss", dloss, d.n);
  need_numel(k, "lse", lse, d.n);
  const int64_t v = d.v;
  const float* x = logits.f();
  const int32_t* t = targets.ptr<int32_t>();
  const float* dl = dloss.f();
  const float* sp = lse.f();
  float* g = dlogits.f();
  const float eps = (float)label_smoothing;
  const float off = (float)(label_smoothing / (double)v);
  parallel_rows(d.n, v, kGrainHeavy, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float* gr = g + i * v;
      if (t[i] == ignore_index) {
#pragma omp simd
        for (int64_t j = 0; j < v; j++) gr[j] = 0;
        continue;
      }
      const float* xr = x + i * v;
      const float l = sp[i], s = dl[i];
#pragma omp simd
      for (int64_t j = 0; j < v; j++) gr[j] = s * (vexp(xr[j] - l) - off);
      const int64_t tj = t[i];
      gr[tj] = s * (vexp(xr[tj] - l) - ((1 - eps) + off));
    }
  });
}

}  // namespace vera
