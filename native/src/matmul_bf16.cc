// GEMMs with a bf16 operand, computed in bf16 as torch.autocast computes them: an f32 operand is
// rounded to bf16 (round to nearest even, as f32_to_bf16), the products of bf16 values are exact in f32
// and accumulate in f32, into an f32 out — so the result is the f32 GEMM of the bf16-rounded operands
// up to summation order (and the flushing of f32 denormals some bf16 instructions do).
// - Many rows: oneDNN's matmul primitive (matmul_dnnl.cc), which picks AMX, AVX-512 BF16 or its own
//   fallback at run time (bf16_gemm_impl() says which), on operands rounded into bf16 scratch.
// - A few rows of a against a bf16 b with a dense axis (decoding): memory-bound AVX-512 dot/axpy
//   kernels that stream b once as bf16, on a's rows rounded to bf16 first.
// - No fast oneDNN bf16 kernel on this CPU (only its reference implementation), or VERA_BF16_GEMM=panels:
//   b's panels are widened into a scratch and multiplied with sgemm, on a rounded to bf16.
#include <dnnl.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "gemm_pack.h"
#include "kernels.h"
#include "matmul_dnnl.h"

namespace vera {
namespace {

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
// single-threaded sgemm on it; A is dense row-major f32 [bt, m, k] (already rounded to bf16 values).
dnnl_status_t gemm_bf16_panels(const View& out, const float* pa, const View& b, bool accumulate) {
  const int64_t bt = out.shape[0], m = out.shape[1], kk = b.shape[1], n = b.shape[2];
  const int64_t sk = b.strides[1], sn = b.strides[2];
  // Widen B as Bᵀ rows (contiguous k) when k is B's dense axis, else as B rows (contiguous n).
  const bool bt_rows = sk == 1 || kk == 1 || (sn != 1 && n != 1 && sk < sn);
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
    const float* A = pa + p * m * kk;
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
        st = dnnl_sgemm('N', bt_rows ? 'T' : 'N', mc, nc, kc, 1.0f, A + i0 * kk + k0, kk, s, bt_rows ? kc : nc,
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

// The decoding case: m ≤ 4 rows of A (dense rows, already rounded to bf16 values) against a bf16 B
// with a dense k or n axis. Returns false when B's layout has neither.
bool gemv_bf16(const View& out, const float* A, const View& b, bool accumulate) {
  const int64_t bt = out.shape[0], m = out.shape[1], kk = b.shape[1], n = b.shape[2];
  for (int64_t p = 0; p < bt; p++) {
    const float* Ap = A + p * m * kk;
    float* C = out.f() + p * m * n;
    bool ok = false;
    switch (m) {
      case 1: ok = gemv_bf16_rows<1>(Ap, kk, b, p, C, accumulate); break;
      case 2: ok = gemv_bf16_rows<2>(Ap, kk, b, p, C, accumulate); break;
      case 3: ok = gemv_bf16_rows<3>(Ap, kk, b, p, C, accumulate); break;
      default: ok = gemv_bf16_rows<4>(Ap, kk, b, p, C, accumulate); break;
    }
    if (!ok) return false;
  }
  return true;
}
#endif

bool panels_forced() {
  const char* s = std::getenv("VERA_BF16_GEMM");
  return s != nullptr && std::strcmp(s, "panels") == 0;
}

}  // namespace

void matmul_bf16(const View& out, const View& a, const View& b, bool accumulate) {
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  const char* k = "matmul";
  try {
#if VERA_BF16_AVX512
    const int64_t sk = b.strides[1], sn = b.strides[2];
    if (m <= 4 && b.dtype == DType::BF16 && (sk == 1 || kk == 1 || sn == 1 || n == 1)) {
      thread_local std::vector<float> rows;
      rows.resize((size_t)(bt * m * kk));
      for (int64_t p = 0; p < bt; p++) pack_rounded_f32(rows.data() + p * m * kk, a, p, 0, m, kk);
      if (gemv_bf16(out, rows.data(), b, accumulate)) return;
    }
#endif
    if (!panels_forced() && matmul_primitive(out, a, b, accumulate, true)) return;
    // The fallback: a rounded into dense f32, b as bf16 (rounded into a scratch when it is f32).
    std::vector<float> apack((size_t)(bt * m * kk));
    each_rows(bt, m, kk, [&](int64_t p, int64_t r0, int64_t r1) { pack_rounded_f32(apack.data() + p * m * kk, a, p, r0, r1, kk); });
    View bv = b;
    std::vector<uint16_t> bpack;
    if (b.dtype != DType::BF16) {
      const int64_t nb = b.strides[0] == 0 ? 1 : bt;
      bpack.resize((size_t)(nb * kk * n));
      each_rows(nb, kk, n, [&](int64_t p, int64_t r0, int64_t r1) { pack_bf16(bpack.data() + p * kk * n, b, p, r0, r1, n); });
      bv.base = bpack.data();
      bv.dtype = DType::BF16;
      bv.offset = 0;
      bv.strides[0] = nb == 1 ? 0 : kk * n;
      bv.strides[1] = n;
      bv.strides[2] = 1;
    }
    const dnnl_status_t status = gemm_bf16_panels(out, apack.data(), bv, accumulate);
    if (status != dnnl_success) fail(k, "dnnl_sgemm failed with status %d", (int)status);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(k, "bf16 matmul of %s · %s failed: %s", a.shape_str().c_str(), b.shape_str().c_str(), e.what());
  }
}

std::string bf16_gemm_impl() {
  if (panels_forced()) return "widened panels + sgemm (VERA_BF16_GEMM=panels)";
  const std::string impl = matmul_primitive_impl(true);
  if (impl.compare(0, 3, "ref") == 0 || impl.compare(0, 11, "unavailable") == 0)
    return "widened panels + sgemm (oneDNN bf16 matmul: " + impl + ")";
  return "oneDNN " + impl;
}

}  // namespace vera
