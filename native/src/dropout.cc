// Inverted dropout of a contiguous view with Philox4x32-10 (philox.h): element i is kept when
// u(seed, offset + i) >= p and scaled by 1/(1 − p). One Philox block feeds four elements; blocks are
// generated 16 at a time in SIMD lanes (AVX-512 vpmuludq when available).
#include <immintrin.h>

#include <cmath>

#include "kernels.h"
#include "mathfun.h"
#include "philox.h"
#include "views.h"

namespace vera {

namespace {

// Ten Philox rounds on 16 counters at once (the arithmetic of philox.h, lanes innermost).
#ifdef __AVX512F__
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on _mm512_set1_epi32 (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 32×32→64 products with vpmuludq on even and odd lanes, recombined into hi/lo words.
inline void mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i pe = _mm512_mul_epu32(a, m);                          // even lanes
  const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);   // odd lanes
  lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}
inline void philox_rounds16(uint32_t* x0p, uint32_t* x1p, uint32_t* x2p, uint32_t* x3p, uint32_t k0, uint32_t k1) {
  __m512i x0 = _mm512_loadu_si512(x0p), x1 = _mm512_loadu_si512(x1p);
  __m512i x2 = _mm512_loadu_si512(x2p), x3 = _mm512_loadu_si512(x3p);
  const __m512i m0 = _mm512_set1_epi32((int)0xd2511f53u), m1 = _mm512_set1_epi32((int)0xcd9e8d57u);
  for (int r = 0; r < 10; r++) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(x0, m0, hi0, lo0);
    mulhilo16(x2, m1, hi1, lo1);
    const __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32((int)k0));
    const __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32((int)k1));
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  _mm512_storeu_si512(x0p, x0);
  _mm512_storeu_si512(x1p, x1);
  _mm512_storeu_si512(x2p, x2);
  _mm512_storeu_si512(x3p, x3);
}
#else
inline void philox_rounds16(uint32_t* x0, uint32_t* x1, uint32_t* x2, uint32_t* x3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
#pragma omp simd
    for (int l = 0; l < 16; l++) {
      const uint64_t p0 = (uint64_t)0xd2511f53u * x0[l];
      const uint64_t p1 = (uint64_t)0xcd9e8d57u * x2[l];
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ x1[l] ^ k0;
      const uint32_t n2 = (uint32_t)(p0 >> 32) ^ x3[l] ^ k1;
      x1[l] = (uint32_t)p1;
      x3[l] = (uint32_t)p0;
      x0[l] = n0;
      x2[l] = n2;
    }
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
}
#endif

}  // namespace

void dropout(const View& out, const View& a, double p, uint64_t seed, uint64_t offset) {
  const char* k = "dropout";
  need_f32_contig(k, "input", a);
  need_f32_contig(k, "output", out);
  need_same_shape(k, "output", out, a);
  if (!(p >= 0 && p < 1)) fail(k, "p = %g must be in [0, 1)", p);
  const int64_t n = a.numel();
  if (n == 0) return;
  const float* x = a.f();
  float* o = out.f();
  const double scale = 1.0 / (1.0 - p);
  // u >= p  <=>  bits >= ceil(p · 2^24) (p · 2^24 is exact in double).
  const uint32_t thresh = (uint32_t)std::ceil(p * 16777216.0);
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  // Work in whole Philox blocks: absolute indices [offset, offset + n) span blocks b0 .. b1.
  const uint64_t b0 = offset >> 2, b1 = (offset + (uint64_t)n + 3) >> 2;
  const int64_t nblocks = (int64_t)(b1 - b0);
  constexpr int L = 16;
  parallel_blocks((nblocks + L - 1) / L, kGrainHeavy / (4 * L), [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; g++) {
      uint32_t x0[L], x1[L], x2[L], x3[L];
      for (int l = 0; l < L; l++) {
        const uint64_t b = b0 + (uint64_t)(g * L + l);
        x0[l] = (uint32_t)b;
        x1[l] = (uint32_t)(b >> 32);
        x2[l] = 0;
        x3[l] = 0;
      }
      philox_rounds16(x0, x1, x2, x3, k0, k1);
      // Words in element order: element 4·l + c of this group uses word c of block l.
      uint32_t flat[4 * L];
      for (int l = 0; l < L; l++) {
        flat[4 * l + 0] = x0[l];
        flat[4 * l + 1] = x1[l];
        flat[4 * l + 2] = x2[l];
        flat[4 * l + 3] = x3[l];
      }
      // Elements covered by this group, clipped to the view.
      const uint64_t e0 = (b0 + (uint64_t)g * L) * 4;
      const uint64_t j0 = std::max<uint64_t>(e0, offset);
      const uint64_t j1 = std::min<uint64_t>(e0 + 4 * L, offset + (uint64_t)n);
      const uint32_t* fw = flat + (j0 - e0);
      float* op = o + (j0 - offset);
      const float* xp = x + (j0 - offset);
      const int64_t cnt = (int64_t)(j1 - j0);
#pragma omp simd
      for (int64_t c = 0; c < cnt; c++) {
        // Integer masking instead of a select: GCC vectorises this loop only without control flow.
        const float kept = (float)((double)xp[c] * scale);
        const uint32_t keep = 0u - (uint32_t)((fw[c] >> 8) >= thresh);
        op[c] = bits_to_f(f_to_bits(kept) & keep);
      }
    }
  });
}

}  // namespace vera
