// Batched GEMM on oneDNN's dnnl_sgemm (row-major). Each operand is passed in place as 'N' or 'T' from
// whichever of its last two strides is 1; layouts sgemm cannot express (overlapping or broadcast
// rows) are packed into a per-thread scratch first. Big matrices run one multithreaded sgemm per
// batch; many small ones run batch-parallel with single-threaded sgemm calls.
// A bf16 `b` (a frozen weight) is widened exactly to f32 on the fly: a few rows of `a` (decoding)
// stream the bf16 weight through AVX-512 dot/axpy kernels, so only its 2 bytes per element are read;
// more rows widen cache-sized panels of `b` into a per-thread scratch and multiply them with sgemm.
#include <dnnl.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// GCC 12's AVX-512 headers start some intrinsics from a self-initialised "undefined" register, which
// -Wuninitialized reports wherever they are inlined; the diagnostics are about the headers' own code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define VERA_BF16_AVX512 1
#else
#define VERA_BF16_AVX512 0
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "convert.h"
#include "kernels.h"
#include "views.h"

namespace vera {
namespace {

// How one [rows, cols] slice of a 3-D view is handed to sgemm.
struct Operand {
  bool trans = false;  // stored column-major (the transpose is row-major)
  int64_t ld = 1;
  bool packed = false;  // needs copying into a dense row-major scratch
};

Operand classify(int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
  Operand op;
  if ((scol == 1 || cols == 1) && (rows == 1 || srow >= std::max<int64_t>(cols, 1))) {
    op.ld = rows == 1 ? std::max<int64_t>(cols, 1) : srow;
    return op;
  }
  if ((srow == 1 || rows == 1) && (cols == 1 || scol >= std::max<int64_t>(rows, 1))) {
    op.trans = true;
    op.ld = cols == 1 ? std::max<int64_t>(rows, 1) : scol;
    return op;
  }
  op.packed = true;
  op.ld = std::max<int64_t>(cols, 1);
  return op;
}

void pack(float* dst, const float* src, int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = src[i * srow + j * scol];
}

// ---- bf16 b -----------------------------------------------------------------------------------

// n bf16 values at stride s, widened (exactly) into dense f32.
void widen(float* dst, const uint16_t* src, int64_t n, int64_t s) {
  if (s == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i * s]);
  }
}

// Panel sizes of the widening path: a KB×NB f32 panel (512 KB) stays in L2 while sgemm reads it.
constexpr int64_t kPanelK = 512;
constexpr int64_t kPanelN = 256;
constexpr int64_t kPanelM = 512;

// out[p] (+)= A[p]·B[p] for a bf16 B, in tasks of (batch, row block, column panel) over threads.
// Each task widens B's [KB, NB] panels into a thread's scratch (kept across calls) and runs a
// single-threaded sgemm on it; A is f32 in place (`oa`), or pre-packed per batch in `apack`.
dnnl_status_t gemm_bf16_panels(const View& out, const View& a, const View& b, bool accumulate, const Operand& oa,
                               const std::vector<float>& apack) {
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  const int64_t sk = b.strides[1], sn = b.strides[2];
  // Widen B as Bᵀ rows (contiguous k) when k is B's dense axis, else as B rows (contiguous n).
  const bool bt_rows = sk == 1 || kk == 1 || (sn != 1 && n != 1 && sk < sn);
  const float* pa = static_cast<const float*>(a.base) + a.offset;
  const uint16_t* pb = static_cast<const uint16_t*>(b.base) + b.offset;
  float* o = out.f();
  const int nt = max_threads();
  const int64_t nm = (m + kPanelM - 1) / kPanelM;
  // Enough column panels that every thread gets about two tasks, but no narrower than 32 columns.
  const int64_t want = std::max<int64_t>(1, (2 * nt + bt * nm - 1) / (bt * nm));
  int64_t nb = (n + want - 1) / want;
  nb = std::min<int64_t>(kPanelN, std::max<int64_t>(32, (nb + 15) / 16 * 16));
  const int64_t nn = (n + nb - 1) / nb;
  const int64_t mb = (m + nm - 1) / nm;
  const int64_t tasks = bt * nm * nn;
  const float beta0 = accumulate ? 1.0f : 0.0f;
  dnnl_status_t status = dnnl_success;

#pragma omp parallel for schedule(dynamic) if (nt > 1 && tasks > 1)
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t p = t / (nm * nn), i0 = (t / nn) % nm * mb, j0 = t % nn * nb;
    const int64_t mc = std::min(mb, m - i0), nc = std::min(nb, n - j0);
    const float* A = oa.packed ? apack.data() + p * m * kk : pa + p * a.strides[0];
    const uint16_t* B = pb + p * b.strides[0];
    float* C = o + p * m * n + i0 * n + j0;
    dnnl_status_t st = dnnl_success;
    try {  // nothing may escape an OpenMP region
      thread_local std::vector<float> scratch;
      scratch.resize(kPanelK * kPanelN);
      float* s = scratch.data();
      for (int64_t k0 = 0; k0 < kk && st == dnnl_success; k0 += kPanelK) {
        const int64_t kc = std::min(kPanelK, kk - k0);
        if (bt_rows) {
          for (int64_t j = 0; j < nc; j++) widen(s + j * kc, B + (j0 + j) * sn + k0 * sk, kc, sk);
        } else {
          for (int64_t q = 0; q < kc; q++) widen(s + q * nc, B + (k0 + q) * sk + j0 * sn, nc, sn);
        }
        const float* Ab = oa.trans ? A + i0 + k0 * oa.ld : A + i0 * oa.ld + k0;
        st = dnnl_sgemm(oa.trans ? 'T' : 'N', bt_rows ? 'T' : 'N', mc, nc, kc, 1.0f, Ab, oa.ld, s, bt_rows ? kc : nc,
                        k0 == 0 ? beta0 : 1.0f, C, n);
      }
    } catch (...) {
      st = dnnl_out_of_memory;
    }
    if (st != dnnl_success) {
#pragma omp critical(vera_matmul_status)
      status = st;
    }
  }
  return status;
}

#if VERA_BF16_AVX512
// 16 bf16 values widened to f32 (bits << 16); the masked form reads only the lanes in `mask`.
inline __m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
inline __m512 widen16(const uint16_t* p, __mmask16 mask) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p)), 16));
}

// R rows of W (row j at W + j·ldw, k contiguous) dotted with MR rows of A (k contiguous):
// res[m·R + r] = Σ_k A[m, k]·W[r, k], fused multiply-adds in 16 lanes, then a lane sum. The next R rows
// are prefetched meanwhile: the hardware prefetcher alone does not keep R interleaved short row
// streams fed from DRAM (GPT-2's 768-wide rows ran at about half the bandwidth).
template <int R, int MR>
inline void dot_rows(const float* A, int64_t lda, const uint16_t* W, int64_t ldw, int64_t k, float* res) {
  __m512 acc[R][MR];
  for (int r = 0; r < R; r++)
    for (int i = 0; i < MR; i++) acc[r][i] = _mm512_setzero_ps();
  int64_t q = 0;
  for (; q + 16 <= k; q += 16) {
    __m512 w[R];
    if ((q & 31) == 0)  // the next R rows at this column, one 64-byte line each (harmless past the end)
      for (int r = 0; r < R; r++) _mm_prefetch((const char*)(W + (r + R) * ldw + q), _MM_HINT_T1);
    for (int r = 0; r < R; r++) w[r] = widen16(W + r * ldw + q);
    for (int i = 0; i < MR; i++) {
      const __m512 x = _mm512_loadu_ps(A + i * lda + q);
      for (int r = 0; r < R; r++) acc[r][i] = _mm512_fmadd_ps(x, w[r], acc[r][i]);
    }
  }
  if (q < k) {
    const __mmask16 mask = (__mmask16)((1u << (k - q)) - 1);
    __m512 w[R];
    for (int r = 0; r < R; r++) w[r] = widen16(W + r * ldw + q, mask);
    for (int i = 0; i < MR; i++) {
      const __m512 x = _mm512_maskz_loadu_ps(mask, A + i * lda + q);
      for (int r = 0; r < R; r++) acc[r][i] = _mm512_fmadd_ps(x, w[r], acc[r][i]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int r = 0; r < R; r++) res[i * R + r] = _mm512_reduce_add_ps(acc[r][i]);
}

// C[i, j] (+)= Σ_k A[i, k]·W[j, k] for output columns j in [j0, j1): B's k axis is dense (W = Bᵀ rows,
// the layout of a linear's [out, in] weight).
template <int MR>
void gemv_dots(const float* A, int64_t lda, const uint16_t* W, int64_t ldw, int64_t k, int64_t j0, int64_t j1,
               float* C, int64_t ldc, bool accumulate) {
  // Rows per pass: more rows keep more of W's memory streams in flight (short rows especially), within
  // the 32 vector registers (R·MR accumulators + R widened rows).
  constexpr int RB = MR <= 2 ? 8 : 4;
  float res[RB * MR];
  auto put = [&](int64_t j, int R) {
    for (int i = 0; i < MR; i++)
      for (int r = 0; r < R; r++) {
        float& c = C[i * ldc + j + r];
        c = accumulate ? c + res[i * R + r] : res[i * R + r];
      }
  };
  int64_t j = j0;
  for (; j + RB <= j1; j += RB) {
    dot_rows<RB, MR>(A, lda, W + j * ldw, ldw, k, res);
    put(j, RB);
  }
  for (; j < j1; j++) {
    dot_rows<1, MR>(A, lda, W + j * ldw, ldw, k, res);
    put(j, 1);
  }
}

// C[i, j0:j1] (+)= Σ_k A[i, k]·W[k, j0:j1]: B's n axis is dense (W = B rows, e.g. GPT-2's [in, out]
// Conv1D weight). The C rows of the column block stay in L1 and take four k steps per pass.
template <int MR>
void gemv_axpy(const float* A, int64_t lda, const uint16_t* W, int64_t ldw, int64_t k, int64_t j0, int64_t j1,
               float* C, int64_t ldc, bool accumulate) {
  if (!accumulate)
    for (int i = 0; i < MR; i++) std::memset(C + i * ldc + j0, 0, sizeof(float) * (j1 - j0));
  int64_t q = 0;
  auto pass = [&](auto steps) {
    constexpr int S = decltype(steps)::value;
    __m512 x[MR][S];
    for (int i = 0; i < MR; i++)
      for (int s = 0; s < S; s++) x[i][s] = _mm512_set1_ps(A[i * lda + q + s]);
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask16 mask = j + 16 <= j1 ? (__mmask16)0xffff : (__mmask16)((1u << (j1 - j)) - 1);
      __m512 w[S];
      for (int s = 0; s < S; s++) w[s] = widen16(W + (q + s) * ldw + j, mask);
      for (int i = 0; i < MR; i++) {
        float* c = C + i * ldc + j;
        __m512 y = _mm512_maskz_loadu_ps(mask, c);
        for (int s = 0; s < S; s++) y = _mm512_fmadd_ps(x[i][s], w[s], y);
        _mm512_mask_storeu_ps(c, mask, y);
      }
    }
  };
  for (; q + 4 <= k; q += 4) pass(std::integral_constant<int, 4>());
  for (; q < k; q++) pass(std::integral_constant<int, 1>());
}

// m ≤ 4 rows of A against a bf16 B whose k or n axis is dense: memory-bound, so B is read once, as
// bf16, by threads owning column blocks. Returns false when B's layout has neither dense axis.
template <int MR>
bool gemv_bf16_rows(const float* A, int64_t lda, const View& b, int64_t p, float* C, bool accumulate) {
  const int64_t kk = b.shape[1], n = b.shape[2], sk = b.strides[1], sn = b.strides[2];
  const uint16_t* B = static_cast<const uint16_t*>(b.base) + b.offset + p * b.strides[0];
  const int64_t work = std::max<int64_t>(kk * MR, 1);
  if (sk == 1 || kk == 1) {
    const int64_t ldw = n == 1 ? 1 : sn;
    parallel_blocks(n, std::max<int64_t>(4, (1 << 15) / work), [&](int64_t lo, int64_t hi) {
      gemv_dots<MR>(A, lda, B, ldw, kk, lo, hi, C, n, accumulate);
    });
    return true;
  }
  if (sn == 1 || n == 1) {
    const int64_t blocks = (n + 15) / 16;
    parallel_blocks(blocks, std::max<int64_t>(1, (1 << 15) / (16 * work)), [&](int64_t lo, int64_t hi) {
      gemv_axpy<MR>(A, lda, B, sk, kk, lo * 16, std::min(n, hi * 16), C, n, accumulate);
    });
    return true;
  }
  return false;
}

// The decoding case: a few rows of A. A's rows must be k-dense (else they are packed: m·k floats).
bool gemv_bf16(const View& out, const View& a, const View& b, bool accumulate) {
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  if (m > 4) return false;
  const int64_t sk = b.strides[1], sn = b.strides[2];
  if (!(sk == 1 || kk == 1 || sn == 1 || n == 1)) return false;
  std::vector<float> apack;
  for (int64_t p = 0; p < bt; p++) {
    const float* A = static_cast<const float*>(a.base) + a.offset + p * a.strides[0];
    int64_t lda = a.strides[1];
    if (a.strides[2] != 1 && kk > 1) {
      apack.resize(m * kk);
      pack(apack.data(), A, m, kk, a.strides[1], a.strides[2]);
      A = apack.data();
      lda = kk;
    }
    float* C = out.f() + p * m * n;
    switch (m) {
      case 1: gemv_bf16_rows<1>(A, lda, b, p, C, accumulate); break;
      case 2: gemv_bf16_rows<2>(A, lda, b, p, C, accumulate); break;
      case 3: gemv_bf16_rows<3>(A, lda, b, p, C, accumulate); break;
      default: gemv_bf16_rows<4>(A, lda, b, p, C, accumulate); break;
    }
  }
  return true;
}
#endif

}  // namespace

void matmul(const View& out, const View& a, const View& b, bool accumulate) {
  const char* k = "matmul";
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(k, "expected 3-D views [batch, rows, cols]");
  need_f32(k, "a", a);
  const bool b_bf16 = b.dtype == DType::BF16;
  if (!b_bf16 && b.dtype != DType::F32) {
    if (b.dtype == DType::F64) fail(k, "b is f64, which the native backend does not support (use f32)");
    fail(k, "b must be f32 or bf16, got %s", dtype_name(b.dtype));
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
  const Operand oa = classify(m, kk, a.strides[1], a.strides[2]);
  const float* pa = static_cast<const float*>(a.base) + a.offset;
  const float beta = accumulate ? 1.0f : 0.0f;

  if (b_bf16) {
#if VERA_BF16_AVX512
    if (gemv_bf16(out, a, b, accumulate)) return;
#endif
    std::vector<float> apack;
    if (oa.packed) {
      apack.resize(bt * m * kk);
      for (int64_t p = 0; p < bt; p++) pack(apack.data() + p * m * kk, pa + p * a.strides[0], m, kk, a.strides[1], a.strides[2]);
    }
    const dnnl_status_t status = gemm_bf16_panels(out, a, b, accumulate, oa, apack);
    if (status != dnnl_success) fail(k, "dnnl_sgemm failed with status %d", (int)status);
    return;
  }

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
