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

// The same activations in f32 arithmetic, each value f(x) and f'(x) from one evaluation (the gated MLP
// kernels: FP64 transcendentals made the backward of a 7B's SwiGLU cost 0.8 ms a layer, bound by the
// FP64 units). Written without cancellation (gelu_tanh through the logistic function: 0.5·(1 + tanh z)
// = σ(2z)), they stay within a few f32 ulps of the double forms above, the accuracy an f32 backend's
// activations have (native's): the contract's tolerance for f32 outputs; a bf16 output rounds them away.
__device__ inline float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }

__device__ inline void act_grad_f(int op, float x, float* f, float* df) {
  switch (op) {
    case G_GELU: {
      const float c = 0.5f * erfcf(-x * (float)kSqrtHalf);
      *f = x * c;
      *df = c + x * (float)kInvSqrt2Pi * expf(-0.5f * x * x);
      return;
    }
    case G_GELU_TANH: {
      const float z = (float)kSqrt2OverPi * (x + 0.044715f * x * x * x);
      const float s = sigmoid_f(2.f * z);  // 0.5·(1 + tanh z)
      *f = x * s;
      *df = s + x * 2.f * s * (1.f - s) * (float)kSqrt2OverPi * (1.f + 3.f * 0.044715f * x * x);
      return;
    }
    case G_SILU: {
      const float s = sigmoid_f(x);
      *f = x * s;
      *df = s * (1.f + x * (1.f - s));
      return;
    }
    case G_TANH: {
      const float t = tanhf(x);
      *f = t;
      *df = 1.f - t * t;
      return;
    }
    case G_SIGMOID: {
      const float s = sigmoid_f(x);
      *f = s;
      *df = s * (1.f - s);
      return;
    }
    default:
      *f = x > 0 ? x : (x != x ? x : 0.f);
      *df = x > 0 ? 1.f : 0.f;
  }
}

}  // namespace cu
}  // namespace vera
