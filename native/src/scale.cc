// Per-feature scalings folded into a weight and their gradients (VeRA's λ_b and λ_d folded into B), on
// f32 views (bf16 ones reach these through the widening fallback):
//   scaleFold:  out[o, k] = (w[o, k] · r[o]) · c[k]
//   scaleGrads: rowGrad[o] = Σ_k (g·w)[o, k] · c[k],  colGrad[k] = Σ_o (g·w)[o, k] · r[o]
//   scaleAdd:   out[i, k] = a[i, k] + v[i, k] · s[k]
//   scaleBackward: dv[i, k] = dy[i, k] · s[k] (rounded to dv's dtype), ds[k] = Σ_i dy[i, k] · v[i, k]
//     — the gradients of v ⊙ s in one pass; dy, v and dv may be bf16 (the others f32), so a dv that
//     feeds a bf16 GEMM is written as the GEMM's operand, not widened and rounded again
// Each product an f32 multiply and each sum in double in index order, as the js reference forms them:
// row sums split by rows, column sums by columns, so the order does not depend on the thread count.
#include <vector>

#include "gemm_pack.h"
#include "kernels.h"
#include "views.h"

namespace vera {

namespace {

const float* matrix_of(const char* k, const char* what, const View& v) {
  need_f32_contig(k, what, v);
  if (v.ndim != 2) fail(k, "%s must be a matrix [O, K], got shape %s", what, v.shape_str().c_str());
  return v.f();
}

const float* vector_of(const char* k, const char* what, const View& v, int64_t n) {
  if (!v.present) return nullptr;
  need_f32_contig(k, what, v);
  need_numel(k, what, v, n);
  return v.f();
}

}  // namespace

void scale_fold(const View& out, const View& w, const View& row_scale, const View& col_scale) {
  const char* k = "scaleFold";
  const float* wp = matrix_of(k, "w", w);
  float* op = const_cast<float*>(matrix_of(k, "output", out));
  need_same_shape(k, "output", out, w);
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const float* r = vector_of(k, "rowScale", row_scale, rows);
  const float* c = vector_of(k, "colScale", col_scale, cols);
  parallel_rows(rows, cols, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; o++) {
      const float ro = r ? r[o] : 1.0f;
      const float* wr = wp + o * cols;
      float* orow = op + o * cols;
      for (int64_t j = 0; j < cols; j++) {
        float v = wr[j];
        if (r) v *= ro;
        if (c) v *= c[j];
        orow[j] = v;
      }
    }
  });
}

void scale_grads(const View& row_grad, const View& col_grad, const View& g, const View& w, const View& row_scale,
                 const View& col_scale) {
  const char* k = "scaleGrads";
  const float* gp = matrix_of(k, "g", g);
  const float* wp = matrix_of(k, "w", w);
  need_same_shape(k, "g", g, w);
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const float* r = vector_of(k, "rowScale", row_scale, rows);
  const float* c = vector_of(k, "colScale", col_scale, cols);
  float* rg = const_cast<float*>(vector_of(k, "rowGrad", row_grad, rows));
  float* cg = const_cast<float*>(vector_of(k, "colGrad", col_grad, cols));
  if (rg)
    parallel_rows(rows, cols, kGrainCheap, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; o++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) {
          const float p = gp[o * cols + j] * wp[o * cols + j];
          s += c ? p * c[j] : p;
        }
        rg[o] = (float)s;
      }
    });
  if (cg)
    parallel_rows(cols, rows, kGrainCheap, [&](int64_t lo, int64_t hi) {
      std::vector<double> acc((size_t)(hi - lo), 0.0);
      double* __restrict a = acc.data() - lo;
      for (int64_t o = 0; o < rows; o++) {
        const float ro = r ? r[o] : 1.0f;
        const float* __restrict gr = gp + o * cols;
        const float* __restrict wr = wp + o * cols;
        if (r) {
#pragma omp simd
          for (int64_t j = lo; j < hi; j++) a[j] += (double)((gr[j] * wr[j]) * ro);
        } else {
#pragma omp simd
          for (int64_t j = lo; j < hi; j++) a[j] += (double)(gr[j] * wr[j]);
        }
      }
      for (int64_t j = lo; j < hi; j++) cg[j] = (float)a[j];
    });
}

void scale_add(const View& out, const View& a, const View& v, const View& s) {
  const char* k = "scaleAdd";
  const float* vp = matrix_of(k, "v", v);
  const float* ap = matrix_of(k, "a", a);
  float* op = const_cast<float*>(matrix_of(k, "output", out));
  need_same_shape(k, "a", a, v);
  need_same_shape(k, "output", out, v);
  const int64_t rows = v.shape[0], cols = v.shape[1];
  const float* sp = vector_of(k, "s", s, cols);
  if (!sp) fail(k, "s is required");
  parallel_rows(rows, cols, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; o++) {
      const float* vr = vp + o * cols;
      const float* ar = ap + o * cols;
      float* orow = op + o * cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) orow[j] = ar[j] + vr[j] * sp[j];
    }
  });
}

namespace {

// A contiguous f32 or bf16 matrix [R, N] for scaleBackward (its rows read as floats).
void need_float_matrix(const char* k, const char* what, const View& v) {
  if (v.dtype != DType::F32 && v.dtype != DType::BF16)
    fail(k, "%s must be f32 or bf16, got %s", what, dtype_name(v.dtype));
  need_contig(k, what, v);
  if (v.ndim != 2) fail(k, "%s must be a matrix [R, N], got shape %s", what, v.shape_str().c_str());
}

// Elements [lo, hi) of row i of a contiguous [R, N] f32 or bf16 matrix as floats: a pointer into it
// (f32) or into `tmp` after widening (bf16).
const float* row_floats(const View& v, int64_t i, int64_t lo, int64_t hi, float* tmp) {
  const int64_t n = v.shape[1];
  if (v.dtype == DType::F32) return v.f() + i * n + lo;
  const uint16_t* src = v.ptr<uint16_t>() + i * n + lo;
#pragma omp simd
  for (int64_t j = 0; j < hi - lo; j++) tmp[j] = bf16_to_f32(src[j]);
  return tmp;
}

}  // namespace

void scale_backward(const View& dv, const View& ds, const View& dy, const View& v, const View& s) {
  const char* k = "scaleBackward";
  need_float_matrix(k, "dy", dy);
  need_float_matrix(k, "v", v);
  need_same_shape(k, "v", v, dy);
  if (dv.present) {
    need_float_matrix(k, "dv", dv);
    need_same_shape(k, "dv", dv, dy);
  }
  const int64_t rows = dy.shape[0], cols = dy.shape[1];
  const float* sp = vector_of(k, "s", s, cols);
  if (!sp) fail(k, "s is required");
  float* dsp = const_cast<float*>(vector_of(k, "ds", ds, cols));
  if (!dv.present && !dsp) return;
  // Column blocks per thread, every row of a block summed in row order (double, as scaleGrads'
  // column sums): ds does not depend on the thread count.
  parallel_rows(cols, rows, kGrainCheap, [&](int64_t lo, int64_t hi) {
    const int64_t n = hi - lo;
    std::vector<double> acc(dsp ? (size_t)n : 0, 0.0);
    std::vector<float> tmp((size_t)(3 * n));
    float* __restrict ty = tmp.data();
    float* __restrict tv = ty + n;
    float* __restrict tp = tv + n;
    const float* __restrict sc = sp + lo;
    for (int64_t i = 0; i < rows; i++) {
      const float* __restrict g = row_floats(dy, i, lo, hi, ty);
      if (dsp) {
        const float* __restrict x = row_floats(v, i, lo, hi, tv);
        double* __restrict a = acc.data();
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] += (double)(g[j] * x[j]);
      }
      if (!dv.present) continue;
      if (dv.dtype == DType::F32) {
        float* __restrict o = dv.f() + i * cols + lo;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) o[j] = g[j] * sc[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) tp[j] = g[j] * sc[j];
        round_to_bf16(dv.ptr<uint16_t>() + i * cols + lo, tp, n);
      }
    }
    if (dsp)
      for (int64_t j = 0; j < n; j++) dsp[lo + j] = (float)acc[(size_t)j];
  });
}

}  // namespace vera
