// LayerNorm and RMSNorm over the last axis of contiguous [R, C] views, forward and backward. Rows run
// in parallel; row statistics accumulate in double; weight/bias gradients go to per-thread partial
// rows that are summed (+=) into dw/db at the end.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "views.h"

namespace vera {

namespace {

struct Rows {
  int64_t r = 0, c = 0;
};

Rows check_x(const char* k, const View& x) {
  need_f32_contig(k, "x", x);
  Rows d;
  rows_of(x, d.r, d.c);
  return d;
}

void check_vec(const char* k, const char* what, const View& v, int64_t n) {
  if (!v.present) return;
  need_f32_contig(k, what, v);
  need_numel(k, what, v, n);
}

void check_like(const char* k, const char* what, const View& v, const View& x) {
  if (!v.present) return;
  need_f32_contig(k, what, v);
  need_same_shape(k, what, v, x);
}

// Threads for a row-parallel pass over r rows of c elements.
int row_threads(int64_t r, int64_t c) {
  const int64_t parts = std::min<int64_t>(r * std::max<int64_t>(c, 1) / kGrainCheap, r);
  return (int)std::max<int64_t>(1, std::min<int64_t>(max_threads(), parts));
}

// Adds the per-thread partial rows part[t·c ...] into dst (when present).
void add_partials(const View& dst, const std::vector<float>& part, int nt, int64_t c, int64_t stride) {
  if (!dst.present) return;
  float* d = dst.f();
  for (int64_t j = 0; j < c; j++) {
    float s = 0;
    for (int t = 0; t < nt; t++) s += part[t * stride + j];
    d[j] += s;
  }
}

}  // namespace

void layernorm(const View& out, const View& mean, const View& rstd, const View& x, const View& w, const View& b, double eps) {
  const char* k = "layerNorm";
  const Rows d = check_x(k, x);
  check_like(k, "output", out, x);
  check_vec(k, "mean", mean, d.r);
  check_vec(k, "rstd", rstd, d.r);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "bias", b, d.c);
  const int64_t c = d.c;
  const float* xp = x.f();
  float* op = out.f();
  float* mp = mean.f();
  float* rp = rstd.f();
  const float* wp = w.present ? w.f() : nullptr;
  const float* bp = b.present ? b.f() : nullptr;
  parallel_rows(d.r, c, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = xp + i * c;
      float* orow = op + i * c;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < c; j++) s += (double)xr[j];
      const double m = s / (double)c;
      double v = 0;
#pragma omp simd reduction(+ : v)
      for (int64_t j = 0; j < c; j++) {
        const double t = (double)xr[j] - m;
        v += t * t;
      }
      v /= (double)c;
      const double rs = 1.0 / std::sqrt(v + eps);
      mp[i] = (float)m;
      rp[i] = (float)rs;
      const float mf = (float)m, rf = (float)rs;
      if (wp && bp) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = (xr[j] - mf) * rf * wp[j] + bp[j];
      } else if (wp) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = (xr[j] - mf) * rf * wp[j];
      } else if (bp) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = (xr[j] - mf) * rf + bp[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = (xr[j] - mf) * rf;
      }
    }
  });
}

void layernorm_backward(const View& dx, const View& dw, const View& db, const View& dy, const View& x, const View& w,
                        const View& mean, const View& rstd) {
  const char* k = "layerNormBackward";
  const Rows d = check_x(k, x);
  check_like(k, "dx", dx, x);
  check_like(k, "dy", dy, x);
  check_vec(k, "dw", dw, d.c);
  check_vec(k, "db", db, d.c);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "mean", mean, d.r);
  check_vec(k, "rstd", rstd, d.r);
  const int64_t r = d.r, c = d.c;
  if (r == 0 || c == 0) return;
  const float* xp = x.f();
  const float* gp = dy.f();
  const float* wp = w.present ? w.f() : nullptr;
  const float* mp = mean.f();
  const float* rp = rstd.f();
  float* dxp = dx.present ? dx.f() : nullptr;
  const int nt = row_threads(r, c);
  const int64_t stride = (c + 15) / 16 * 16;  // keep threads' partial rows on separate cache lines
  const bool want_w = dw.present, want_b = db.present;
  std::vector<float> pw(want_w ? nt * stride : 0, 0.0f), pb(want_b ? nt * stride : 0, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t lo, hi;
    split_range(r, omp_get_num_threads(), t, lo, hi);
    float* aw = want_w ? pw.data() + t * stride : nullptr;
    float* ab = want_b ? pb.data() + t * stride : nullptr;
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = xp + i * c;
      const float* gr = gp + i * c;
      const float m = mp[i], s = rp[i];
      double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t j = 0; j < c; j++) {
        const float xhat = (xr[j] - m) * s;
        const float g = wp ? gr[j] * wp[j] : gr[j];
        sg += (double)g;
        sgx += (double)g * (double)xhat;
      }
      if (aw) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) aw[j] += gr[j] * ((xr[j] - m) * s);
      }
      if (ab) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) ab[j] += gr[j];
      }
      if (dxp) {
        const float mg = (float)(sg / (double)c), mgx = (float)(sgx / (double)c);
        float* dr = dxp + i * c;
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
          const float xhat = (xr[j] - m) * s;
          const float g = wp ? gr[j] * wp[j] : gr[j];
          dr[j] = s * (g - mg - xhat * mgx);
        }
      }
    }
  }
  add_partials(dw, pw, nt, c, stride);
  add_partials(db, pb, nt, c, stride);
}

void rmsnorm(const View& out, const View& rstd, const View& x, const View& w, double eps) {
  const char* k = "rmsNorm";
  const Rows d = check_x(k, x);
  check_like(k, "output", out, x);
  check_vec(k, "rstd", rstd, d.r);
  check_vec(k, "weight", w, d.c);
  const int64_t c = d.c;
  const float* xp = x.f();
  float* op = out.f();
  float* rp = rstd.f();
  const float* wp = w.present ? w.f() : nullptr;
  parallel_rows(d.r, c, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = xp + i * c;
      float* orow = op + i * c;
      double ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t j = 0; j < c; j++) ss += (double)xr[j] * (double)xr[j];
      const double rs = 1.0 / std::sqrt(ss / (double)c + eps);
      rp[i] = (float)rs;
      const float rf = (float)rs;
      if (wp) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = xr[j] * rf * wp[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) orow[j] = xr[j] * rf;
      }
    }
  });
}

void rmsnorm_backward(const View& dx, const View& dw, const View& dy, const View& x, const View& w, const View& rstd) {
  const char* k = "rmsNormBackward";
  const Rows d = check_x(k, x);
  check_like(k, "dx", dx, x);
  check_like(k, "dy", dy, x);
  check_vec(k, "dw", dw, d.c);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "rstd", rstd, d.r);
  const int64_t r = d.r, c = d.c;
  if (r == 0 || c == 0) return;
  const float* xp = x.f();
  const float* gp = dy.f();
  const float* wp = w.present ? w.f() : nullptr;
  const float* rp = rstd.f();
  float* dxp = dx.present ? dx.f() : nullptr;
  const int nt = row_threads(r, c);
  const int64_t stride = (c + 15) / 16 * 16;
  std::vector<float> pw(dw.present ? nt * stride : 0, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t lo, hi;
    split_range(r, omp_get_num_threads(), t, lo, hi);
    float* aw = dw.present ? pw.data() + t * stride : nullptr;
    for (int64_t i = lo; i < hi; i++) {
      const float* xr = xp + i * c;
      const float* gr = gp + i * c;
      const float s = rp[i];
      double sgx = 0;
#pragma omp simd reduction(+ : sgx)
      for (int64_t j = 0; j < c; j++) {
        const float g = wp ? gr[j] * wp[j] : gr[j];
        sgx += (double)g * (double)(xr[j] * s);
      }
      if (aw) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) aw[j] += gr[j] * (xr[j] * s);
      }
      if (dxp) {
        const float mgx = (float)(sgx / (double)c);
        float* dr = dxp + i * c;
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
          const float g = wp ? gr[j] * wp[j] : gr[j];
          dr[j] = s * (g - (xr[j] * s) * mgx);
        }
      }
    }
  }
  add_partials(dw, pw, nt, c, stride);
}

}  // namespace vera
