// The activations with a fused derivative (kernels.h's G_* codes), in double as the js backend forms
// them (src/backends/js/math.ts): the unary and unaryGrad kernels (elementwise.cu) and the gated MLP
// kernels (gated.cu) share these, so each gives the same bits.
#pragma once

#include "device.cuh"
#include "kernels.h"

namespace vera {
namespace cu {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2Pi = 0.3989422804014327;
constexpr double kSqrtHalf = 0.7071067811865476;

__device__ inline double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
// Exact GELU through erfc, which has no cancellation for x ≪ 0 (1 + erf(x/√2) does).
__device__ inline double gelu(double x) { return 0.5 * x * erfc(-x * kSqrtHalf); }
__device__ inline double gelu_tanh(double x) { return 0.5 * x * (1 + tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x))); }

// f(x) of the activation with derivative code `op` (G_SILU → silu, …).
__device__ inline double act_op(int op, double x) {
  switch (op) {
    case G_GELU: return gelu(x);
    case G_GELU_TANH: return gelu_tanh(x);
    case G_SILU: return x * sigmoid(x);
    case G_TANH: return tanh(x);
    case G_SIGMOID: return sigmoid(x);
    default: return x > 0 ? x : (x != x ? x : 0.0);
  }
}

// f'(x) of the activations (the js backend's formulas).
__device__ inline double grad_op(int op, double x) {
  switch (op) {
    case G_GELU: return 0.5 * erfc(-x * kSqrtHalf) + x * kInvSqrt2Pi * exp(-0.5 * x * x);
    case G_GELU_TANH: {
      const double t = tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * kSqrt2OverPi * (1 + 3 * 0.044715 * x * x);
    }
    case G_SILU: {
      const double s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case G_TANH: {
      const double t = tanh(x);
      return 1 - t * t;
    }
    case G_SIGMOID: {
      const double s = sigmoid(x);
      return s * (1 - s);
    }
    default: return x > 0 ? 1 : 0;
  }
}

// f(x) and f'(x) from one evaluation, for the gated MLP kernels (FP64 transcendentals made the backward
// of a 7B's SwiGLU cost 0.8 ms a layer, bound by the FP64 units). SiLU and sigmoid, whose exp takes x
// itself (exact), are computed in f32 without cancellation (1 − σ(x) as e·σ(x), e = exp(−x)): a few f32
// ulps from the double forms, the accuracy of an f32 backend's activations (native's). The GELUs and
// tanh take a computed argument whose f32 rounding exp and erfc would amplify, so they stay in double.
// WANT_DF = false (the forward) skips f'.
template <bool WANT_DF = true>
__device__ inline void act_grad(int op, float x, float* f, float* df) {
  switch (op) {
    case G_SILU:
    case G_SIGMOID: {
      // σ(x) and 1 − σ(x) from exp(−|x|) ≤ 1, so nothing overflows or cancels.
      const float e = expf(-fabsf(x)), inv = 1.f / (1.f + e);
      const float s = x >= 0 ? inv : e * inv, oms = x >= 0 ? e * inv : inv;
      if (x != x) {
        *f = x;
        if (WANT_DF) *df = x;
        return;
      }
      *f = op == G_SIGMOID ? s : x * s;
      if (WANT_DF) *df = op == G_SIGMOID ? s * oms : s * (1.f + x * oms);
      return;
    }
    case G_RELU:
      *f = x > 0 ? x : (x != x ? x : 0.f);
      if (WANT_DF) *df = x > 0 ? 1.f : 0.f;
      return;
    default:
      *f = (float)act_op(op, x);
      if (WANT_DF) *df = (float)grad_op(op, x);
  }
}

}  // namespace cu
}  // namespace vera
