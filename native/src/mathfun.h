// Branch-free float math that GCC vectorises inside `omp simd` loops (libm's expf/tanhf/erff are
// scalar calls): exp and log to ~1 ulp (Cephes polynomials), tanh / sigmoid / GELU built on exp
// without cancellation, and the normal CDF for exact GELU, so results agree with the js backend's
// float64 math to float32 rounding.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace vera {

// Forced inlining: a call left in a loop body (the inliner gives up in big translation units) stops
// GCC from vectorising the loop.
#define VERA_INLINE inline __attribute__((always_inline))

VERA_INLINE float bits_to_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
VERA_INLINE uint32_t f_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// e^x. Results below FLT_MIN (x < −87.34) are flushed to 0 *before* any subnormal is computed:
// subnormal arithmetic takes microcode assists costing ~100 cycles per instruction (masked attention
// scores are −inf). 2^n is applied as two factors so results up to FLT_MAX stay finite; NaN passes.
VERA_INLINE float vexp(float x) {
  float xc = x < -87.33654f ? -87.33654f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  // n = round(x / ln2) with the 1.5·2^23 trick; r = x − n·ln2 in two parts (Cody–Waite).
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const int32_t ni = (int32_t)(f_to_bits(t) - f_to_bits(12582912.0f));
  float r = std::fma(n, -0.693359375f, xc);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = bits_to_f((uint32_t)(n1 + 127) << 23);
  const float s2 = bits_to_f((uint32_t)(n2 + 127) << 23);
  const float y = x < -87.33654f ? 0.0f : p * s1 * s2;
  return x != x ? x : y;
}

// Clamp for exp arguments whose huge results would turn e/(1+e) into inf/inf.
VERA_INLINE float min80(float x) { return x > 80.0f ? 80.0f : x; }

// 1/(1+e^−x), accurate in both tails (no 1 − small cancellation).
VERA_INLINE float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

// tanh: odd polynomial (Cephes tanhf) below 0.625, else 1 − 2/(e^{2|x|}+1) with the sign restored.
VERA_INLINE float vtanh(float x) {
  const float ax = std::fabs(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = std::fma(p, z, 2.06390887954e-2f);
  p = std::fma(p, z, -5.37397155531e-2f);
  p = std::fma(p, z, 1.33314422036e-1f);
  p = std::fma(p, z, -3.33332819422e-1f);
  const float small = std::fma(p * z, x, x);
  const float big = 1.0f - 2.0f / (vexp(2.0f * ax) + 1.0f);
  const float r = ax < 0.625f ? small : std::copysign(big, x);
  return x != x ? x : r;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

// e^{−2u} for GELU-tanh's u = √(2/π)(x + 0.044715x³). The argument (|2u| ~ 16 in the tail, where
// float rounding of u alone would cost ~10 ulp of the result) is formed in float-float arithmetic
// (fma products, two-sum) and applied as e^{hi}·(1 + lo). All float, so it vectorises.
constexpr double kGeluM = -2.0 * 0.7978845608028654;  // −2·√(2/π)
constexpr float kGeluMh = (float)kGeluM, kGeluMl = (float)(kGeluM - (double)kGeluMh);
constexpr float kGeluKh = 0.044715f, kGeluKl = (float)(0.044715 - (double)kGeluKh);
// The argument −2u = ah + al of e^{−2u} (x clamped to ±30, beyond which e^{−2u} is 0 or inf).
VERA_INLINE void gelu_tanh_arg(float x0, float& ah, float& al) {
  const float x = x0 > 30.0f ? 30.0f : (x0 < -30.0f ? -30.0f : x0);
  const float p = x * x, pl = std::fma(x, x, -p);
  const float q = p * x, ql = std::fma(p, x, -q) + pl * x;                      // x³ = q + ql
  const float r = kGeluKh * q, rl = std::fma(kGeluKh, q, -r) + (kGeluKh * ql + kGeluKl * q);  // k·x³
  const float s = x + r, bb = s - x, sl = ((x - (s - bb)) + (r - bb)) + rl;   // two-sum
  ah = kGeluMh * s;
  al = std::fma(kGeluMh, s, -ah) + (kGeluMh * sl + kGeluMl * s);
}
VERA_INLINE float vexp_gelu(float x0, float cap) {
  float ah, al;
  gelu_tanh_arg(x0, ah, al);
  ah = ah > cap ? cap : ah;
  return vexp(ah) * (1.0f + al);
}

// 0.5·x·(1 + tanh(u)) = x·sigmoid(2u) = x / (1 + e^{−2u}): no cancellation for negative x.
VERA_INLINE float vgelu_tanh(float x) { return x / (1.0f + vexp_gelu(x, 200.0f)); }

// d/dx gelu_tanh = s + 2x·s(1−s)·u' with s = sigmoid(2u), 1−s = e/(1+e), e = exp(−2u) (capped at e^80).
VERA_INLINE float vgelu_tanh_grad_e(float x, float e) {
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * x * x);
  const float s = 1.0f / (1.0f + e);
  const float oms = e * s;
  return s + 2.0f * x * s * oms * du;
}
VERA_INLINE float vgelu_tanh_grad(float x) { return vgelu_tanh_grad_e(x, vexp_gelu(x, 80.0f)); }

// Both at once, bit-identical to the two functions above: the argument and (below the derivative's cap)
// the exponential are shared.
VERA_INLINE void vgelu_tanh_both(float x, float& y, float& g) {
  float ah, al;
  gelu_tanh_arg(x, ah, al);
  const float e = vexp(ah > 200.0f ? 200.0f : ah) * (1.0f + al);
  const float e80 = ah > 80.0f ? vexp(80.0f) * (1.0f + al) : e;
  y = x / (1.0f + e);
  g = vgelu_tanh_grad_e(x, e80);
}

// x·sigmoid(x) and its derivative s·(1 + x·(1−s)).
VERA_INLINE float vsilu(float x) { return x / (1.0f + vexp(-x)); }
VERA_INLINE float vsilu_grad(float x) {
  const float e = vexp(min80(-x));
  const float s = 1.0f / (1.0f + e);
  return s * (1.0f + x * (e * s));
}
VERA_INLINE float vsigmoid_grad(float x) {
  const float e = vexp(min80(-x));
  const float s = 1.0f / (1.0f + e);
  return s * (e * s);
}
// 1 − tanh² = 4·s·(1−s) with s = sigmoid(2x): exact in the tails where 1 − t² would cancel to 0.
VERA_INLINE float vtanh_grad(float x) {
  const float e = vexp(min80(-2.0f * std::fabs(x)));
  const float s = 1.0f / (1.0f + e);
  return 4.0f * s * (e * s);
}

// e^{−t²/2} with t² split into float hi + lo (fma), so large t lose no accuracy to the rounding of t².
VERA_INLINE float vexp_neg_half_sq(float t) {
  const float hh = t * t;
  const float lo = std::fma(t, t, -hh);
  return vexp(-0.5f * hh) * (1.0f - 0.5f * lo);
}

// Upper normal tail Q(t) = Φ(−t) = erfc(t/√2)/2 for t ≥ 0, to ~3 ulp relative (polynomials fitted by
// native/dev/fit_gelu_erf.py): t < 1: 0.5 − t·A(t²); t ≥ 1: e^{−t²/2}·w·B(w − m) with w = 1/t and B
// fitted separately on t in [1, 2.5] and [2.5, 14] (beyond, the result underflows anyway).
VERA_INLINE float vnormal_tail(float t) {
  t = t > 20.0f ? 20.0f : t;
  const float u = t * t;
  float a = -3.251657077e-08f;
  a = std::fma(a, u, 6.510298363e-07f);
  a = std::fma(a, u, -9.430721548e-06f);
  a = std::fma(a, u, 1.154271959e-04f);
  a = std::fma(a, u, -1.187325921e-03f);
  a = std::fma(a, u, 9.973556735e-03f);
  a = std::fma(a, u, -6.649038196e-02f);
  a = std::fma(a, u, 3.989422917e-01f);
  const float small = 0.5f - t * a;
  const float w = 1.0f / (t < 1.0f ? 1.0f : t);
  const float v1 = w - 6.999999881e-01f;
  float b1 = -5.443900358e-03f;
  b1 = std::fma(b1, v1, 3.603481129e-02f);
  b1 = std::fma(b1, v1, -5.966850370e-02f);
  b1 = std::fma(b1, v1, 6.609794497e-02f);
  b1 = std::fma(b1, v1, -5.423207209e-02f);
  b1 = std::fma(b1, v1, 1.783093251e-02f);
  b1 = std::fma(b1, v1, 4.988423362e-02f);
  b1 = std::fma(b1, v1, -1.550831646e-01f);
  b1 = std::fma(b1, v1, 3.034468591e-01f);
  const float v2 = w - 2.357142866e-01f;
  float b2 = 9.184534073e+00f;
  b2 = std::fma(b2, v2, -1.176750898e+00f);
  b2 = std::fma(b2, v2, -2.308317661e+00f);
  b2 = std::fma(b2, v2, 1.593223095e+00f);
  b2 = std::fma(b2, v2, -3.862461746e-01f);
  b2 = std::fma(b2, v2, -2.905880511e-01f);
  b2 = std::fma(b2, v2, 3.913455606e-01f);
  b2 = std::fma(b2, v2, -1.631467044e-01f);
  b2 = std::fma(b2, v2, -1.429632604e-01f);
  b2 = std::fma(b2, v2, 3.797170520e-01f);
  const float big = vexp_neg_half_sq(t) * w * (t < 2.5f ? b1 : b2);
  return t < 1.0f ? small : big;
}

// Φ(x), the standard normal CDF, from the tail on the side that avoids cancellation.
VERA_INLINE float vnormal_cdf(float x) {
  const float q = vnormal_tail(std::fabs(x));
  return x >= 0.0f ? 1.0f - q : q;
}

// Exact GELU x·Φ(x) and its derivative Φ(x) + x·φ(x).
VERA_INLINE float gelu_erf(float x) { return x * vnormal_cdf(x); }
VERA_INLINE float gelu_erf_grad_c(float x, float c) { return c + x * 0.3989422804014327f * vexp_neg_half_sq(std::fabs(x)); }
VERA_INLINE float gelu_erf_grad(float x) { return gelu_erf_grad_c(x, vnormal_cdf(x)); }
// Both at once (Φ(x) shared), bit-identical to the two above.
VERA_INLINE void gelu_erf_both(float x, float& y, float& g) {
  const float c = vnormal_cdf(x);
  y = x * c;
  g = gelu_erf_grad_c(x, c);
}

// Natural log (Cephes logf: mantissa in [√½, √2), degree-8 polynomial, ~1 ulp). Subnormals are
// rescaled first; x < 0 and NaN give NaN, 0 gives −inf, inf gives inf.
VERA_INLINE float vlog(float x) {
  const bool sub = x < 1.17549435e-38f;
  const float xs = sub ? x * 8388608.0f : x;  // 2^23
  const uint32_t u = f_to_bits(xs);
  int32_t e = (int32_t)((u >> 23) & 0xff) - 126;
  float m = bits_to_f((u & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool lo = m < 0.707106781186547524f;
  e = lo ? e - 1 : e;
  m = lo ? m + m - 1.0f : m - 1.0f;
  const float fe = (float)e - (sub ? 23.0f : 0.0f);
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = std::fma(p, m, -1.1514610310e-1f);
  p = std::fma(p, m, 1.1676998740e-1f);
  p = std::fma(p, m, -1.2420140846e-1f);
  p = std::fma(p, m, 1.4249322787e-1f);
  p = std::fma(p, m, -1.6668057665e-1f);
  p = std::fma(p, m, 2.0000714765e-1f);
  p = std::fma(p, m, -2.4999993993e-1f);
  p = std::fma(p, m, 3.3333331174e-1f);
  float y = p * m * z;
  y = std::fma(fe, -2.12194440e-4f, y);
  y = std::fma(z, -0.5f, y);
  float r = m + y;
  r = std::fma(fe, 0.693359375f, r);
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  r = x == INFINITY ? x : r;
  return x != x ? x : r;
}

}  // namespace vera
