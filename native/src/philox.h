// Philox4x32-10 (Salmon et al., SC'11), the C++ twin of src/backends/philox.ts: dropout's uniform
// u(seed, j) = (word[j mod 4] of block ⌊j/4⌋) >> 8 · 2^-24, bit-identical to the TypeScript. The
// dropout kernel and the attention kernels' probability dropout both draw their masks through
// philox_dropout_span, which generates 16 blocks (64 elements) at a time in SIMD lanes (AVX-512
// vpmuludq when available).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "mathfun.h"

// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized and -Wuninitialized on its own undefined-vector
// idiom (_mm512_set1_epi32, _mm512_cvtps_pd...), a known false positive, wherever these inline.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace vera {

struct Philox4 {
  uint32_t w[4];
};

// Counter (c0, c1, 0, 0), key (k0, k1).
inline Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
  uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
  for (int r = 0; r < 10; r++) {
    const uint64_t p0 = (uint64_t)0xd2511f53u * x0;
    const uint64_t p1 = (uint64_t)0xcd9e8d57u * x2;
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    const uint32_t n0 = hi1 ^ x1 ^ k0;
    const uint32_t n2 = hi0 ^ x3 ^ k1;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return Philox4{{x0, x1, x2, x3}};
}

// The 24-bit integer behind the uniform of absolute index j (u = bits · 2^-24).
inline uint32_t philox_bits24(uint64_t seed, uint64_t j) {
  const uint64_t b = j >> 2;
  const Philox4 p = philox4x32((uint32_t)b, (uint32_t)(b >> 32), (uint32_t)seed, (uint32_t)(seed >> 32));
  return p.w[j & 3] >> 8;
}

// Ten Philox rounds on 16 counters at once (the arithmetic of philox4x32, lanes innermost).
#ifdef __AVX512F__
// 32×32→64 products with vpmuludq on even and odd lanes, recombined into hi/lo words.
inline void philox_mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i pe = _mm512_mul_epu32(a, m);                         // even lanes
  const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // odd lanes
  lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}
inline void philox_rounds16(uint32_t* x0p, uint32_t* x1p, uint32_t* x2p, uint32_t* x3p, uint32_t k0, uint32_t k1) {
  __m512i x0 = _mm512_loadu_si512(x0p), x1 = _mm512_loadu_si512(x1p);
  __m512i x2 = _mm512_loadu_si512(x2p), x3 = _mm512_loadu_si512(x3p);
  const __m512i m0 = _mm512_set1_epi32((int)0xd2511f53u), m1 = _mm512_set1_epi32((int)0xcd9e8d57u);
  for (int r = 0; r < 10; r++) {
    __m512i hi0, lo0, hi1, lo1;
    philox_mulhilo16(x0, m0, hi0, lo0);
    philox_mulhilo16(x2, m1, hi1, lo1);
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

// Elements one philox_rounds16 call covers (16 blocks of 4 words).
constexpr int64_t kPhiloxGroup = 64;

// Keep threshold on the 24-bit integer: u >= p  <=>  bits >= ceil(p · 2^24) (p · 2^24 is exact in double).
inline uint32_t philox_keep_threshold(double p) { return (uint32_t)std::ceil(p * 16777216.0); }

// Keep bits of the 64 elements 4·block0 .. 4·block0 + 63: bit t is set when element 4·block0 + t is
// kept (its 24-bit draw is >= thresh).
#if defined(__AVX512F__) && defined(__BMI2__)
inline uint64_t philox_keep_bits64(uint64_t block0, uint32_t k0, uint32_t k1, uint32_t thresh) {
  alignas(64) uint32_t x[4][16];
  const __m512i lo = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)block0),
                                      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  // The counter's high word, plus the carry of lanes whose low word wrapped around.
  const __mmask16 carry = _mm512_cmplt_epu32_mask(lo, _mm512_set1_epi32((int)(uint32_t)block0));
  const __m512i hi0 = _mm512_set1_epi32((int)(uint32_t)(block0 >> 32));
  _mm512_store_si512(x[0], lo);
  _mm512_store_si512(x[1], _mm512_mask_add_epi32(hi0, carry, hi0, _mm512_set1_epi32(1)));
  _mm512_store_si512(x[2], _mm512_setzero_si512());
  _mm512_store_si512(x[3], _mm512_setzero_si512());
  philox_rounds16(x[0], x[1], x[2], x[3], k0, k1);
  // Word c of block l belongs to element 4·l + c: deposit each word's 16 lane bits at stride 4.
  const __m512i t = _mm512_set1_epi32((int)thresh);
  uint64_t bits = 0;
  for (int c = 0; c < 4; c++) {
    const __mmask16 m = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(_mm512_load_si512(x[c]), 8), t);
    bits |= _pdep_u64((uint64_t)m, 0x1111111111111111ull << c);
  }
  return bits;
}
#else
inline uint64_t philox_keep_bits64(uint64_t block0, uint32_t k0, uint32_t k1, uint32_t thresh) {
  uint32_t x0[16], x1[16], x2[16], x3[16];
  for (int l = 0; l < 16; l++) {
    const uint64_t b = block0 + (uint64_t)l;
    x0[l] = (uint32_t)b;
    x1[l] = (uint32_t)(b >> 32);
    x2[l] = 0;
    x3[l] = 0;
  }
  philox_rounds16(x0, x1, x2, x3, k0, k1);
  uint64_t bits = 0;
  for (int l = 0; l < 16; l++) {
    bits |= (uint64_t)((x0[l] >> 8) >= thresh) << (4 * l);
    bits |= (uint64_t)((x1[l] >> 8) >= thresh) << (4 * l + 1);
    bits |= (uint64_t)((x2[l] >> 8) >= thresh) << (4 * l + 2);
    bits |= (uint64_t)((x3[l] >> 8) >= thresh) << (4 * l + 3);
  }
  return bits;
}
#endif

// o[c] = keep ? (float)(x[c] · scale) : 0 for the 64 elements of one group (bit c of `bits`).
VERA_INLINE void philox_apply64(const float* x, float* o, uint64_t bits, double scale) {
#ifdef __AVX512F__
  if (scale == 1.0) {  // a select only (x · 1 is exact)
    for (int q = 0; q < 4; q++)
      _mm512_storeu_ps(o + 16 * q, _mm512_maskz_mov_ps((__mmask16)(bits >> (16 * q)), _mm512_loadu_ps(x + 16 * q)));
    return;
  }
  const __m512d sc = _mm512_set1_pd(scale);
  for (int q = 0; q < 8; q++) {  // 8 elements at a time: the product is formed in double
    const __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + 8 * q)), sc);
    const __m256 r = _mm512_cvtpd_ps(v);
    _mm256_storeu_ps(o + 8 * q, _mm256_maskz_mov_ps((__mmask8)(bits >> (8 * q)), r));
  }
#else
  for (int c = 0; c < kPhiloxGroup; c++) o[c] = (bits >> c) & 1 ? (float)((double)x[c] * scale) : 0.0f;
#endif
}

// Inverted dropout of n consecutive elements whose absolute Philox indices start at `start`:
// o[c] = bits(seed, start + c) >= thresh ? (float)(x[c] · scale) : 0. x may equal o. The mask depends
// only on (seed, start + c), so any split of a range into spans draws the same mask.
inline void philox_dropout_span(const float* x, float* o, int64_t n, uint64_t start, uint64_t seed, uint32_t thresh,
                                double scale) {
  if (n <= 0) return;
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  const uint64_t end = start + (uint64_t)n;
  for (uint64_t e0 = (start >> 2) * 4; e0 < end; e0 += kPhiloxGroup) {
    const uint64_t bits = philox_keep_bits64(e0 >> 2, k0, k1, thresh);
    if (e0 >= start && e0 + kPhiloxGroup <= end) {
      philox_apply64(x + (e0 - start), o + (e0 - start), bits, scale);
      continue;
    }
    // A group that overhangs the span (its first or last): element by element.
    const uint64_t j0 = std::max<uint64_t>(e0, start), j1 = std::min<uint64_t>(e0 + kPhiloxGroup, end);
    for (uint64_t j = j0; j < j1; j++)
      o[j - start] = (bits >> (j - e0)) & 1 ? (float)((double)x[j - start] * scale) : 0.0f;
  }
}

}  // namespace vera

#pragma GCC diagnostic pop
