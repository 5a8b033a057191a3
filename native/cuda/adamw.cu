// One AdamW step in place on contiguous param, m, v (torch.optim.AdamW's single-tensor arithmetic, in
// the js backend's order: decay, lerp m, update v, bias-corrected step), intermediates in double: the
// CUDA twin of native/src/adamw.cc. One thread per element, grid-stride. The double operations are
// written as _rn intrinsics so nvcc cannot contract them into FMAs: each is rounded as in the js
// backend's float64 arithmetic.
#include <cmath>

#include "device.cuh"
#include "kernels.h"

namespace vera {

namespace {

struct AdamWConsts {
  double decay, bc2_sqrt, step_size, b1c, b2, b2c, eps;
};

__global__ void __launch_bounds__(cu::kThreads)
    adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                 float* __restrict__ v, int64_t n, AdamWConsts k) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const double g = grad[i], p0 = param[i], m0 = m[i], v0 = v[i];
    const float p1 = (float)__dmul_rn(p0, k.decay);
    const float m1 = (float)__dadd_rn(m0, __dmul_rn(k.b1c, __dsub_rn(g, m0)));
    const float v1 = (float)__dadd_rn(__dmul_rn(v0, k.b2), __dmul_rn(__dmul_rn(k.b2c, g), g));
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn((double)v1), k.bc2_sqrt), k.eps);
    param[i] = (float)__dsub_rn((double)p1, __dmul_rn(k.step_size, __ddiv_rn((double)m1, denom)));
    m[i] = m1;
    v[i] = v1;
  }
}

}  // namespace

void adamw(const View& param, const View& grad, const View& m, const View& v, const AdamWParams& hp) {
  const char* k = "adamw";
  need_f32_contig(k, "param", param);
  need_f32_contig(k, "grad", grad);
  need_f32_contig(k, "m", m);
  need_f32_contig(k, "v", v);
  const int64_t n = param.numel();
  need_numel(k, "grad", grad, n);
  need_numel(k, "m", m, n);
  need_numel(k, "v", v, n);
  if (!(hp.step >= 1)) fail(k, "step must be >= 1, got %g", hp.step);
  if (n == 0) return;
  AdamWConsts c;
  c.decay = 1 - hp.lr * hp.weight_decay;
  const double bc1 = 1 - std::pow(hp.beta1, hp.step);
  c.bc2_sqrt = std::sqrt(1 - std::pow(hp.beta2, hp.step));
  c.step_size = hp.lr / bc1;
  c.b1c = 1 - hp.beta1;
  c.b2 = hp.beta2;
  c.b2c = 1 - hp.beta2;
  c.eps = hp.eps;
  adamw_kernel<<<cu::grid_for(n), cu::kThreads, 0, cu::stream()>>>(param.f(), grad.f(), m.f(), v.f(), n, c);
  cu::launched(k);
}

}  // namespace vera
