// Softmax and log-softmax over the last axis of contiguous [R, N] views, and their backward. Rows run
// in parallel; each row is max → exp and sum → scale, with row statistics in double where the js
// backend keeps them in double.
#include <cmath>

#include "kernels.h"
#include "mathfun.h"
#include "views.h"

namespace vera {

namespace {

inline float row_max(const float* x, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
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
  const float* x = a.f();
  float* y = out.f();
  parallel_rows(r, n, kGrainHeavy, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = x + i * n;
      float* yr = y + i * n;
      const float m = row_max(xr, n);
      double sum = 0;  // double: log-softmax of the largest entries depends on its low bits
      if (log) {
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; j++) sum += (double)vexp(xr[j] - m);
        const double lse = (double)m + std::log(sum);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) yr[j] = (float)((double)xr[j] - lse);
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; j++) {
          const float e = vexp(xr[j] - m);
          yr[j] = e;
          sum += (double)e;
        }
        const float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) yr[j] *= inv;
      }
    }
  });
}

void softmax_backward(const View& dx, const View& y, const View& dy, bool log) {
  const char* k = "softmaxBackward";
  check_rows(k, dx, y, "dx", "y");
  check_rows(k, dy, y, "dy", "y");
  int64_t r, n;
  rows_of(y, r, n);
  const float* yp = y.f();
  const float* gp = dy.f();
  float* dp = dx.f();
  parallel_rows(r, n, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* yr = yp + i * n;
      const float* gr = gp + i * n;
      float* dr = dp + i * n;
      double s = 0;
      if (log) {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) s += (double)gr[j];
        const float sf = (float)s;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dr[j] = gr[j] - vexp(yr[j]) * sf;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) s += (double)gr[j] * (double)yr[j];
        const float sf = (float)s;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dr[j] = yr[j] * (gr[j] - sf);
      }
    }
  });
}

}  // namespace vera
