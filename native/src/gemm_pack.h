// Packing matrices of a strided [batch, rows, cols] view into dense row-major scratch for the GEMM
// paths: as bf16 bits (f32 rounded to nearest even, bit-identical to convert.h's f32_to_bf16), or as f32
// holding bf16 values. Shared by matmul_bf16.cc and matmul_dnnl.cc.
#pragma once

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
#include <cstdint>

#include "convert.h"
#include "views.h"

namespace vera {


// n f32 values (dense) → bf16 bits, bit-identical to f32_to_bf16 (RNE; NaN quieted, sign kept).
inline void round_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
#if VERA_BF16_AVX512
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(src + i);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(hi, quiet));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(r));
  }
#endif
  for (; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

// Rows [r0, r1) of one [rows, cols] matrix of a view (batch element p) as dense row-major bf16.
inline void pack_bf16(uint16_t* dst, const View& v, int64_t p, int64_t r0, int64_t r1, int64_t cols) {
  const int64_t sr = v.strides[1], sc = v.strides[2];
  if (v.dtype == DType::BF16) {
    const uint16_t* src = v.ptr<uint16_t>() + p * v.strides[0];
    for (int64_t i = r0; i < r1; i++)
      for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = src[i * sr + j * sc];
    return;
  }
  const float* src = v.f() + p * v.strides[0];
  if (sc == 1 || cols == 1) {
    for (int64_t i = r0; i < r1; i++) round_to_bf16(dst + i * cols, src + i * sr, cols);
    return;
  }
  for (int64_t i = r0; i < r1; i++)
    for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = f32_to_bf16(src[i * sr + j * sc]);
}

// Rows [r0, r1) of one [rows, cols] matrix of a view as dense row-major f32 holding bf16 values
// (rounded or widened).
inline void pack_rounded_f32(float* dst, const View& v, int64_t p, int64_t r0, int64_t r1, int64_t cols) {
  const int64_t sr = v.strides[1], sc = v.strides[2];
  for (int64_t i = r0; i < r1; i++) {
    float* d = dst + i * cols;
    if (v.dtype == DType::BF16) {
      const uint16_t* src = v.ptr<uint16_t>() + p * v.strides[0] + i * sr;
      for (int64_t j = 0; j < cols; j++) d[j] = bf16_to_f32(src[j * sc]);
    } else {
      const float* src = v.f() + p * v.strides[0] + i * sr;
      for (int64_t j = 0; j < cols; j++) d[j] = bf16_to_f32(f32_to_bf16(src[j * sc]));
    }
  }
}

// Runs pack(p, r0, r1) over rows [r0, r1) of batch element p, covering every row of the nb elements, in
// parallel blocks of rows when there is enough to do (a single big matrix is split too).
template <class F>
void each_rows(int64_t nb, int64_t rows, int64_t cols, F&& pack) {
  if (rows <= 0) return;
  const int64_t grain = std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(cols, 1));
  parallel_blocks(nb * rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi;) {
      const int64_t p = t / rows, r0 = t % rows, r1 = std::min(rows, r0 + (hi - t));
      pack(p, r0, r1);
      t += r1 - r0;
    }
  });
}

// Rows [r0, r1) of one [rows, cols] matrix of an f32 view (batch element p) as dense row-major f32.
inline void pack_f32(float* dst, const View& v, int64_t p, int64_t r0, int64_t r1, int64_t cols) {
  const float* src = v.f() + p * v.strides[0];
  for (int64_t i = r0; i < r1; i++)
    for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = src[i * v.strides[1] + j * v.strides[2]];
}

}  // namespace vera
