// Batched GEMM on oneDNN's dnnl_sgemm (row-major). Each operand is passed in place as 'N' or 'T' from
// whichever of its last two strides is 1; layouts sgemm cannot express (overlapping or broadcast
// rows) are packed into a per-thread scratch first. Big matrices run one multithreaded sgemm per
// batch; many small ones run batch-parallel with single-threaded sgemm calls.
// A GEMM with a bf16 operand computes in bf16 (matmul_bf16.cc). One large product of at least 16 rows
// with a k-dense b (or a batch of them sharing b) goes to oneDNN's matmul primitive instead
// (matmul_dnnl.cc), whose f32 brgemm is faster than dnnl_sgemm there; VERA_F32_GEMM=sgemm keeps it on
// dnnl_sgemm.
#include <dnnl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "kernels.h"
#include "gemm_operand.h"
#include "matmul_dnnl.h"
#include "views.h"

namespace vera {
namespace {

// VERA_F32_GEMM=sgemm keeps every f32 product on dnnl_sgemm (tests run both paths).
bool sgemm_forced() {
  const char* s = std::getenv("VERA_F32_GEMM");
  return s != nullptr && std::strcmp(s, "sgemm") == 0;
}

void pack(float* dst, const float* src, int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = src[i * srow + j * scol];
}

}  // namespace

void matmul(const View& out, const View& a, const View& b, bool accumulate) {
  const char* k = "matmul";
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(k, "expected 3-D views [batch, rows, cols]");
  for (const View* v : {&a, &b}) {
    const char* what = v == &a ? "a" : "b";
    if (v->dtype == DType::F64) fail(k, "%s is f64, which the native backend does not support (use f32)", what);
    if (v->dtype != DType::F32 && v->dtype != DType::BF16) fail(k, "%s must be f32 or bf16, got %s", what, dtype_name(v->dtype));
  }
  need_f32_contig(k, "output", out);
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  if (b.shape[0] != bt || b.shape[1] != kk || out.shape[0] != bt || out.shape[1] != m || out.shape[2] != n)
    fail(k, "shapes %s · %s -> %s do not agree", a.shape_str().c_str(), b.shape_str().c_str(), out.shape_str().c_str());
  if (bt == 0 || m == 0 || n == 0) return;
  float* o = out.f();
  if (kk == 0) {
    if (!accumulate) std::memset(o, 0, sizeof(float) * bt * m * n);
    return;
  }
  if (a.dtype == DType::BF16 || b.dtype == DType::BF16) {
    matmul_bf16(out, a, b, accumulate);
    return;
  }
  // Measured here: the primitive is up to 2.2× faster with a k-dense b (a linear's [out, in] weight read
  // transposed, the forward's layout; most at 128 rows), while dnnl_sgemm is ~10% faster with an n-dense
  // b at thousands of rows (the backward's dY·W), so only the former goes to the primitive.
  const bool k_dense_b = b.strides[1] == 1 && n > 1;
  if (k_dense_b && m >= 16 && (bt == 1 || b.strides[0] == 0) && (double)m * n * kk >= (double)(1 << 18) &&
      !sgemm_forced()) {
    try {
      if (matmul_primitive(out, a, b, accumulate, false)) return;
    } catch (const std::exception& e) {
      fail(k, "oneDNN matmul of %s · %s failed: %s", a.shape_str().c_str(), b.shape_str().c_str(), e.what());
    }
  }
  const Operand oa = classify(m, kk, a.strides[1], a.strides[2]);
  const float* pa = static_cast<const float*>(a.base) + a.offset;
  const float beta = accumulate ? 1.0f : 0.0f;

  const Operand ob = classify(kk, n, b.strides[1], b.strides[2]);
  const float* pb = static_cast<const float*>(b.base) + b.offset;
  const int nt = max_threads();
  const double macs = (double)m * n * kk;
  // One batch element; `scratch` holds packed operands when a layout needs it.
  auto one = [&](int64_t p, std::vector<float>& scratch) -> dnnl_status_t {
    const float* A = pa + p * a.strides[0];
    const float* B = pb + p * b.strides[0];
    if (oa.packed || ob.packed) {
      scratch.resize((oa.packed ? m * kk : 0) + (ob.packed ? kk * n : 0));
      float* s = scratch.data();
      if (oa.packed) {
        pack(s, A, m, kk, a.strides[1], a.strides[2]);
        A = s;
        s += m * kk;
      }
      if (ob.packed) {
        pack(s, B, kk, n, b.strides[1], b.strides[2]);
        B = s;
      }
    }
    return dnnl_sgemm(oa.trans ? 'T' : 'N', ob.trans ? 'T' : 'N', m, n, kk, 1.0f, A, oa.ld, B, ob.ld, beta, o + p * m * n, n);
  };

  dnnl_status_t status = dnnl_success;
  // Batch-parallel when there are enough small problems; otherwise sgemm threads each one itself.
  const bool batch_parallel = nt > 1 && bt >= nt && (macs < (double)(1 << 24) || bt % nt == 0);
  if (batch_parallel) {
#pragma omp parallel
    {
      std::vector<float> scratch;
      dnnl_status_t st = dnnl_success;
#pragma omp for schedule(static)
      for (int64_t p = 0; p < bt; p++) {
        dnnl_status_t s;
        try {  // nothing may escape an OpenMP region
          s = one(p, scratch);
        } catch (...) {
          s = dnnl_out_of_memory;
        }
        if (s != dnnl_success) st = s;
      }
      if (st != dnnl_success) {
#pragma omp critical(vera_matmul_status)
        status = st;
      }
    }
  } else {
    std::vector<float> scratch;
    for (int64_t p = 0; p < bt && status == dnnl_success; p++) status = one(p, scratch);
  }
  if (status != dnnl_success) fail(k, "dnnl_sgemm failed with status %d", (int)status);
}

}  // namespace vera
