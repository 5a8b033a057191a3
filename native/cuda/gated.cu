// A gated MLP's activation, out = f(gate) · up (SwiGLU, GeGLU), and its backward in one pass each,
// where the composite (src/ops/composite/gated.ts) runs two and four kernels: f(gate), f'(gate) and
// dy · up are f32 values in registers, f and f' from one f32 evaluation (activations.cuh act_grad_f,
// within a few f32 ulps of the js backend's double forms), each product an f32 multiply. Views are contiguous, each f32 or bf16 (bf16 activations); the dtype of each
// is a flag the loads branch on uniformly. Each thread handles kUnroll elements a block apart, loads
// first, so several loads are in flight per thread (these kernels are bound by memory).
#include "activations.cuh"
#include "bf16.cuh"
#include "kernels.h"

namespace vera {

namespace {

constexpr int kUnroll = 4;

struct Vec {
  void* p;
  bool bf16;
};

__device__ __forceinline__ float ldv(const Vec& v, int64_t i) {
  return v.bf16 ? cu::bf16_bits_to_f32(static_cast<const uint16_t*>(v.p)[i]) : static_cast<const float*>(v.p)[i];
}
__device__ __forceinline__ void stv(const Vec& v, int64_t i, float x) {
  if (v.bf16) static_cast<uint16_t*>(v.p)[i] = cu::f32_to_bf16_bits(x);
  else static_cast<float*>(v.p)[i] = x;
}

__global__ void __launch_bounds__(cu::kThreads) gated_kernel(int op, Vec out, Vec gate, Vec up, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x * kUnroll;
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x * kUnroll + threadIdx.x; base < n; base += step) {
    float g[kUnroll], u[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; j++) {
      const int64_t i = base + (int64_t)j * blockDim.x;
      g[j] = i < n ? ldv(gate, i) : 0.f;
      u[j] = i < n ? ldv(up, i) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kUnroll; j++) {
      const int64_t i = base + (int64_t)j * blockDim.x;
      if (i >= n) break;
      float a, da;
      cu::act_grad_f(op, g[j], &a, &da);
      stv(out, i, a * u[j]);
    }
  }
}

__global__ void __launch_bounds__(cu::kThreads)
    gated_backward_kernel(int op, Vec dgate, Vec dup, Vec gate, Vec up, Vec dy, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x * kUnroll;
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x * kUnroll + threadIdx.x; base < n; base += step) {
    float g[kUnroll], u[kUnroll], d[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; j++) {
      const int64_t i = base + (int64_t)j * blockDim.x;
      g[j] = i < n ? ldv(gate, i) : 0.f;
      u[j] = i < n && dgate.p ? ldv(up, i) : 0.f;
      d[j] = i < n ? ldv(dy, i) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kUnroll; j++) {
      const int64_t i = base + (int64_t)j * blockDim.x;
      if (i >= n) break;
      float a, da;
      cu::act_grad_f(op, g[j], &a, &da);
      if (dgate.p) stv(dgate, i, (d[j] * u[j]) * da);
      if (dup.p) stv(dup, i, d[j] * a);
    }
  }
}

Vec vec_of(const char* k, const char* what, const View& v, const View& ref) {
  need_float_contig(k, what, v);
  need_same_shape(k, what, v, ref);
  return Vec{static_cast<char*>(v.base) + v.offset * dtype_bytes(v.dtype), v.dtype == DType::BF16};
}

unsigned blocks(int64_t n) { return cu::grid_for((n + kUnroll - 1) / kUnroll); }

void check_op(const char* k, int op) {
  if (op < 0 || op >= G_COUNT) fail(k, "unknown activation code %d", op);
}

}  // namespace

void gated_activation(int op, const View& out, const View& gate, const View& up) {
  const char* k = "gatedActivation";
  check_op(k, op);
  const Vec o = vec_of(k, "output", out, gate), g = vec_of(k, "gate", gate, gate), u = vec_of(k, "up", up, gate);
  const int64_t n = gate.numel();
  if (n == 0) return;
  gated_kernel<<<blocks(n), cu::kThreads, 0, cu::stream()>>>(op, o, g, u, n);
  cu::launched(k);
}

void gated_activation_backward(int op, const View& dgate, const View& dup, const View& gate, const View& up,
                               const View& dy) {
  const char* k = "gatedActivationBackward";
  check_op(k, op);
  const Vec g = vec_of(k, "gate", gate, gate), u = vec_of(k, "up", up, gate), d = vec_of(k, "dy", dy, gate);
  const Vec dg = dgate.present ? vec_of(k, "dgate", dgate, gate) : Vec{nullptr, false};
  const Vec du = dup.present ? vec_of(k, "dup", dup, gate) : Vec{nullptr, false};
  const int64_t n = gate.numel();
  if (n == 0 || (!dg.p && !du.p)) return;
  gated_backward_kernel<<<blocks(n), cu::kThreads, 0, cu::stream()>>>(op, dg, du, g, u, d, n);
  cu::launched(k);
}

}  // namespace vera
