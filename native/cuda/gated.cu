// A gated MLP's activation, out = f(gate) · up (SwiGLU, GeGLU), and its backward in one pass each,
// where the composite (src/ops/composite/gated.ts) runs two and four kernels: f(gate), f'(gate) and
// dy · up are f32 values in registers, f and f' from one evaluation (activations.cuh act_grad: SiLU in
// f32 within a few ulps of the js backend's double forms, the GELUs in double), each product an f32
// multiply. Views are contiguous, each f32 or bf16 (bf16 activations); the dtype of each is a flag the
// loads branch on uniformly. Each thread handles kUnroll elements a block apart, loads first, so
// several loads are in flight per thread (these kernels are bound by memory).
#include "activations.cuh"
#include "bf16.cuh"
#include "kernels.h"

#include <initializer_list>

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
      float a;
      cu::act_grad<false>(op, g[j], &a, nullptr);
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
      cu::act_grad(op, g[j], &a, &da);
      if (dgate.p) stv(dgate, i, (d[j] * u[j]) * da);
      if (dup.p) stv(dup, i, d[j] * a);
    }
  }
}

// All views bf16 and 16-byte aligned (the activations of a bf16 model): eight elements a thread per
// access, the same arithmetic; the last n % 8 elements by the scalar kernels above.
__global__ void __launch_bounds__(cu::kThreads)
    gated_vec8_kernel(int op, cu::bf16_t* out, const cu::bf16_t* gate, const cu::bf16_t* up, int64_t n8) {
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n8; c += (int64_t)gridDim.x * blockDim.x) {
    float g[8], u[8], y[8];
    cu::ld8(gate + 8 * c, g);
    cu::ld8(up + 8 * c, u);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      float a;
      cu::act_grad<false>(op, g[j], &a, nullptr);
      y[j] = a * u[j];
    }
    cu::st8(out + 8 * c, y);
  }
}

__global__ void __launch_bounds__(cu::kThreads)
    gated_backward_vec8_kernel(int op, cu::bf16_t* dgate, cu::bf16_t* dup, const cu::bf16_t* gate,
                               const cu::bf16_t* up, const cu::bf16_t* dy, int64_t n8) {
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n8; c += (int64_t)gridDim.x * blockDim.x) {
    float g[8], u[8], d[8], dg[8], du[8];
    cu::ld8(gate + 8 * c, g);
    cu::ld8(dy + 8 * c, d);
    if (dgate) cu::ld8(up + 8 * c, u);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      float a, da;
      cu::act_grad(op, g[j], &a, &da);
      dg[j] = dgate ? (d[j] * u[j]) * da : 0.f;
      du[j] = d[j] * a;
    }
    if (dgate) cu::st8(dgate + 8 * c, dg);
    if (dup) cu::st8(dup + 8 * c, du);
  }
}

// Whether every present view is bf16 at a 16-byte aligned address.
bool vec8(std::initializer_list<Vec> vs) {
  for (const Vec& v : vs)
    if (v.p && (!v.bf16 || !cu::aligned16(v.p))) return false;
  return true;
}

// Vec v advanced by `at` elements.
Vec shifted(const Vec& v, int64_t at) {
  if (!v.p) return v;
  return Vec{static_cast<char*>(v.p) + at * (v.bf16 ? 2 : 4), v.bf16};
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
  int64_t done = 0;
  if (vec8({o, g, u}) && n >= 8) {
    const int64_t n8 = n / 8;
    using B = cu::bf16_t;
    gated_vec8_kernel<<<cu::grid_for(n8), cu::kThreads, 0, cu::stream()>>>(
        op, static_cast<B*>(o.p), static_cast<const B*>(g.p), static_cast<const B*>(u.p), n8);
    done = 8 * n8;
  }
  if (done < n)
    gated_kernel<<<blocks(n - done), cu::kThreads, 0, cu::stream()>>>(op, shifted(o, done), shifted(g, done),
                                                                       shifted(u, done), n - done);
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
  int64_t done = 0;
  if (vec8({dg, du, g, u, d}) && n >= 8) {
    const int64_t n8 = n / 8;
    using B = cu::bf16_t;
    gated_backward_vec8_kernel<<<cu::grid_for(n8), cu::kThreads, 0, cu::stream()>>>(
        op, static_cast<B*>(dg.p), static_cast<B*>(du.p), static_cast<const B*>(g.p), static_cast<const B*>(u.p),
        static_cast<const B*>(d.p), n8);
    done = 8 * n8;
  }
  if (done < n)
    gated_backward_kernel<<<blocks(n - done), cu::kThreads, 0, cu::stream()>>>(
        op, shifted(dg, done), shifted(du, done), shifted(g, done), shifted(u, done), shifted(d, done), n - done);
  cu::launched(k);
}

}  // namespace vera
