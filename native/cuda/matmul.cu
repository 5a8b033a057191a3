// Batched GEMM through cuBLASLt. Row-major out[b] = a[b]·b[b] is computed as the column-major
// product outᵀ = bᵀ·aᵀ, each operand passed in place as 'N' or 'T' from whichever of its last two
// strides is 1, batch strides as given (0 broadcasts). Layouts cuBLASLt cannot take (overlapping rows)
// are packed into dense scratch first. f32 × f32 computes in f32 (CUBLAS_COMPUTE_32F; VERA_CUDA_TF32=1
// allows TF32 tensor cores); a bf16 operand makes the product bf16 on tensor cores with f32
// accumulation, the other operand rounded to bf16 (round to nearest even) into scratch, as the
// contract's bf16 rule says. out may be bf16 (bf16 activations): a bf16 product writes it directly
// (cuBLASLt's C and D in bf16, the f32 accumulation rounded once; accumulate is beta = 1 on that C,
// widened and added in f32 before the rounding); an f32 × f32 product is computed in f32 into a
// stream-ordered temporary (out widened into it first when accumulating) and rounded into out, so it
// keeps its f32 meaning. Algorithms come from cuBLASLt's heuristic, cached per shape, dtypes and
// alignment.
#include <cstdio>
#include <cublasLt.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "bf16.cuh"
#include "gemm_operand.h"
#include "kernels.h"
#include "strided.cuh"

namespace vera {
namespace {

constexpr size_t kWorkspace = size_t(32) << 20;

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("matmul", "%s failed: cuBLASLt status %d", what, (int)s);
}

struct Lt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  bool tf32 = false;
};

Lt& lt() {
  static Lt* x = [] {
    Lt* l = new Lt();
    lt_check(cublasLtCreate(&l->handle), "cublasLtCreate");
    cu::check(cudaMalloc(&l->workspace, kWorkspace), "matmul", "cuBLASLt workspace");
    const char* t = std::getenv("VERA_CUDA_TF32");
    l->tf32 = t && std::strcmp(t, "1") == 0;
    return l;
  }();
  return *x;
}

// A dense row-major copy of v in scratch `slot`, as dtype dt (a bf16 rounding when v is f32).
View dense_copy(const View& v, DType dt, int slot) {
  View d;
  d.dtype = dt;
  d.ndim = v.ndim;
  int64_t s = 1;
  for (int i = v.ndim - 1; i >= 0; i--) {
    d.shape[i] = v.shape[i];
    d.strides[i] = s;
    s *= v.shape[i];
  }
  d.offset = 0;
  d.present = true;
  d.base = cu::scratch((size_t)std::max<int64_t>(s, 1) * dtype_bytes(dt), slot);
  copy(d, v);
  return d;
}

using Key = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int>;

struct Plan {
  bool ok = false;
  cublasLtMatmulAlgo_t algo;
};

std::map<Key, Plan>& plans() {
  static auto* m = new std::map<Key, Plan>();
  return *m;
}

int alignment(const void* p) {
  const uintptr_t u = (uintptr_t)p;
  for (int a = 256; a > 1; a /= 2)
    if (u % a == 0) return a;
  return 1;
}

// outᵀ (n × m, ld n) = op(B) (n × k) · op(A) (k × m) in column-major terms, batched.
// Returns false when cuBLASLt has no algorithm for this layout (the caller packs and retries).
// out is bf16 (out_bf16, only with bf16 operands) or f32.
bool lt_matmul(void* out, bool out_bf16, const void* a, const void* b, bool bf16, int64_t bt, int64_t m, int64_t n, int64_t k, const Operand& oa,
               int64_t sa, const Operand& ob, int64_t sb, bool accumulate) {
  Lt& L = lt();
  const cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t od = out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t ct = bf16 ? CUBLAS_COMPUTE_32F : L.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // Column-major view of b's slice: row-major [k, n] dense along n is col-major n × k (ld = ld_b), no op;
  // stored column-major it is col-major k × n, transposed.
  const cublasOperation_t opB = ob.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opA = oa.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t brows = ob.trans ? k : n, bcols = ob.trans ? n : k;
  const int64_t arows = oa.trans ? m : k, acols = oa.trans ? k : m;
  const Key key{(int)bf16 | ((int)out_bf16 << 1), (int)ob.trans, (int)oa.trans, bt, m, n, k, ob.ld, oa.ld, sb, sa, (int64_t)ct,
                std::min(alignment(a), alignment(b)), alignment(out)};

  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t lb = nullptr, la = nullptr, lc = nullptr;
  auto cleanup = [&] {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
  };
  lt_check(cublasLtMatmulDescCreate(&desc, ct, CUDA_R_32F), "cublasLtMatmulDescCreate");
  lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof opB), "set TRANSA");
  lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof opA), "set TRANSB");
  lt_check(cublasLtMatrixLayoutCreate(&lb, in, (uint64_t)brows, (uint64_t)bcols, ob.ld), "layout b");
  lt_check(cublasLtMatrixLayoutCreate(&la, in, (uint64_t)arows, (uint64_t)acols, oa.ld), "layout a");
  lt_check(cublasLtMatrixLayoutCreate(&lc, od, (uint64_t)n, (uint64_t)m, n), "layout out");
  if (bt > 1) {
    const int32_t count = (int32_t)bt;
    const int64_t so = m * n;
    for (auto [l, s] : {std::pair{lb, sb}, std::pair{la, sa}, std::pair{lc, so}}) {
      lt_check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), "batch count");
      lt_check(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof s), "batch stride");
    }
  }
  auto& cache = plans();
  auto it = cache.find(key);
  if (it == cache.end()) {
    Plan plan;
    cublasLtMatmulPreference_t pref = nullptr;
    lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
    size_t ws = kWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (out_bf16) {
      // Split-K partial sums must meet in f32 (the workspace), never in the bf16 output: the in-place
      // and output-type reductions round every partial to bf16 (an ulp of the partial sums, measured on
      // an H100 as 6e-2 at |out| ≈ 14), which the contract's one rounding per element forbids.
      const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes);
    }
    const uint32_t al_b = (uint32_t)alignment(b), al_a = (uint32_t)alignment(a), al_o = (uint32_t)alignment(out);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_b, sizeof al_b);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_a, sizeof al_a);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_o, sizeof al_o);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_o, sizeof al_o);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(L.handle, desc, lb, la, lc, lc, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
      plan.ok = true;
      plan.algo = res.algo;
    }
    it = cache.emplace(key, plan).first;
  }
  if (!it->second.ok) {
    cleanup();
    return false;
  }
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  const cublasStatus_t s = cublasLtMatmul(L.handle, desc, &alpha, b, lb, a, la, &beta, out, lc, out, lc, &it->second.algo,
                                          L.workspace, kWorkspace, cu::stream());
  cleanup();
  lt_check(s, "cublasLtMatmul");
  return true;
}

}  // namespace

void matmul(const View& out, const View& a, const View& b, bool accumulate) {
  const char* k = "matmul";
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(k, "expected 3-D views [batch, rows, cols]");
  for (const View* v : {&a, &b}) {
    const char* what = v == &a ? "a" : "b";
    if (v->dtype == DType::F64) fail(k, "%s is f64, which the cuda backend does not support (use f32)", what);
    if (v->dtype != DType::F32 && v->dtype != DType::BF16) fail(k, "%s must be f32 or bf16, got %s", what, dtype_name(v->dtype));
  }
  need_float_contig(k, "output", out);
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  if (b.shape[0] != bt || b.shape[1] != kk || out.shape[0] != bt || out.shape[1] != m || out.shape[2] != n)
    fail(k, "shapes %s · %s -> %s do not agree", a.shape_str().c_str(), b.shape_str().c_str(), out.shape_str().c_str());
  if (bt == 0 || m == 0 || n == 0) return;
  if (kk == 0) {
    if (!accumulate) fill(out, 0.0);
    return;
  }
  if (m > INT32_MAX || n > INT32_MAX || kk > INT32_MAX || bt > INT32_MAX) fail(k, "dimensions above 2^31 are not supported");
  const bool bf16 = a.dtype == DType::BF16 || b.dtype == DType::BF16;
  const bool out_bf16 = out.dtype == DType::BF16;
  // An f32 product keeps its meaning: the f32 GEMM into an f32 temporary, rounded once into out (with
  // accumulate, out widened into the temporary first and added by the GEMM in f32). A bf16 product
  // accumulating into a bf16 out takes the same way: cuBLASLt's beta = 1 on a bf16 C in place gave
  // results an ulp of the partial sums off on an H100 (conformance, 2026-12-07), so it is not used.
  // VERA_CUDA_BF16_BETA=1 uses it (to check it again under the split-K restriction above).
  static const bool beta_in_place = [] {
    const char* e = std::getenv("VERA_CUDA_BF16_BETA");
    return e && std::strcmp(e, "1") == 0;
  }();
  if (out_bf16 && (!bf16 || (accumulate && !beta_in_place))) {
    cu::DeviceTemp t((size_t)out.numel() * sizeof(float), k);
    const View o32 = dense_like(out, DType::F32, t.p, accumulate);
    matmul(o32, a, b, accumulate);
    copy(out, o32);
    if (cu::profiling()) {
      char label[128];
      std::snprintf(label, sizeof label, "matmul %s %lldx%lldx%lld%s (bf16 out%s)", bf16 ? "bf16" : "f32", (long long)m, (long long)n, (long long)kk,
                    bt > 1 ? (" batch " + std::to_string(bt)).c_str() : "", accumulate ? ", accumulate" : "");
      cu::profile_label(label);
    }
    return;
  }
  const DType want = bf16 ? DType::BF16 : DType::F32;
  if (cu::profiling()) {
    char label[128];
    std::snprintf(label, sizeof label, "matmul %s %lldx%lldx%lld%s%s%s%s", bf16 ? "bf16" : "f32", (long long)m, (long long)n,
                  (long long)kk, bt > 1 ? (" batch " + std::to_string(bt)).c_str() : "", a.dtype != want ? " (a rounded)" : "",
                  b.dtype != want ? " (b rounded)" : "", out_bf16 ? " (bf16 out)" : "");
    cu::profile_label(label);
  }
  View va = a, vb = b;
  Operand oa = classify(m, kk, a.strides[1], a.strides[2]);
  Operand ob = classify(kk, n, b.strides[1], b.strides[2]);
  // An f32 operand of a bf16 product is rounded into scratch; so is any layout cuBLASLt cannot read.
  if (va.dtype != want || oa.packed) {
    va = dense_copy(a, want, 1);
    oa = classify(m, kk, va.strides[1], va.strides[2]);
  }
  if (vb.dtype != want || ob.packed) {
    vb = dense_copy(b, want, 2);
    ob = classify(kk, n, vb.strides[1], vb.strides[2]);
  }
  const int es = dtype_bytes(want);
  auto ptr = [es](const View& v) { return static_cast<const void*>(static_cast<const char*>(v.base) + v.offset * es); };
  void* po = static_cast<char*>(out.base) + out.offset * dtype_bytes(out.dtype);
  const int64_t sa = bt > 1 ? va.strides[0] : 0, sb = bt > 1 ? vb.strides[0] : 0;
  if (lt_matmul(po, out_bf16, ptr(va), ptr(vb), bf16, bt, m, n, kk, oa, sa, ob, sb, accumulate)) return;
  // No algorithm for these pointers or strides: dense, aligned copies always have one (slots 0 and 3:
  // va and vb may be slots 1 and 2 already).
  const View pa = dense_copy(va, want, 0), pb = dense_copy(vb, want, 3);
  const Operand da = classify(m, kk, pa.strides[1], pa.strides[2]), db = classify(kk, n, pb.strides[1], pb.strides[2]);
  if (lt_matmul(po, out_bf16, ptr(pa), ptr(pb), bf16, bt, m, n, kk, da, bt > 1 ? pa.strides[0] : 0, db, bt > 1 ? pb.strides[0] : 0,
                accumulate))
    return;
  if (out_bf16) {
    // An out pointer cuBLASLt takes in no bf16 algorithm (odd alignment): the f32 product into a
    // temporary, rounded into out once, as a bf16 D would be.
    cu::DeviceTemp t((size_t)out.numel() * sizeof(float), k);
    const View o32 = dense_like(out, DType::F32, t.p, accumulate);
    if (lt_matmul(t.p, false, ptr(pa), ptr(pb), bf16, bt, m, n, kk, da, bt > 1 ? pa.strides[0] : 0, db, bt > 1 ? pb.strides[0] : 0,
                  accumulate)) {
      copy(out, o32);
      return;
    }
  }
  fail(k, "cuBLASLt has no algorithm for %s · %s (%s)", a.shape_str().c_str(), b.shape_str().c_str(), bf16 ? "bf16" : "f32");
}

std::string bf16_gemm_impl() { return "cuBLASLt (bf16 tensor cores, f32 accumulation)"; }

}  // namespace vera
