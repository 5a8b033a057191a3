// One AdamW step in place on contiguous param, m, v (torch.optim.AdamW's single-tensor arithmetic, in
// the js backend's order: decay, lerp m, update v, bias-corrected step), intermediates in double.
#include <cmath>

#include "kernels.h"
#include "views.h"

namespace vera {

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
  const double decay = 1 - hp.lr * hp.weight_decay;
  const double bc1 = 1 - std::pow(hp.beta1, hp.step);
  const double bc2_sqrt = std::sqrt(1 - std::pow(hp.beta2, hp.step));
  const double step_size = hp.lr / bc1;
  const double b1c = 1 - hp.beta1, b2 = hp.beta2, b2c = 1 - hp.beta2, eps = hp.eps;
  float* pp = param.f();
  const float* gp = grad.f();
  float* mp = m.f();
  float* vp = v.f();
  parallel_blocks(n, kGrainCheap, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
      const double g = gp[i];
      const float p1 = (float)((double)pp[i] * decay);
      const float m1 = (float)((double)mp[i] + b1c * (g - (double)mp[i]));
      const float v1 = (float)((double)vp[i] * b2 + b2c * g * g);
      const double denom = std::sqrt((double)v1) / bc2_sqrt + eps;
      pp[i] = (float)((double)p1 - step_size * ((double)m1 / denom));
      mp[i] = m1;
      vp[i] = v1;
    }
  });
}

}  // namespace vera
