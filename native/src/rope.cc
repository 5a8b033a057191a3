// Rotary position embedding with HF's rotate_half layout over the head axis of x [B, T, H, D] (last
// stride 1, other strides free, so q/k are read in place from a fused projection); cos/sin tables
// [B or 1, T, D/2] hold each angle once; out is contiguous. The backward negates sin (inverse).
#include "kernels.h"
#include "views.h"

namespace vera {

void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse) {
  const char* k = "rope";
  need_f32(k, "x", x);
  need_f32_contig(k, "output", out);
  need_f32_contig(k, "cos", cos);
  need_f32_contig(k, "sin", sin);
  if (x.ndim != 4) fail(k, "x must be 4-D [B, T, H, D], got shape %s", x.shape_str().c_str());
  need_same_shape(k, "output", out, x);
  const int64_t b = x.shape[0], t = x.shape[1], h = x.shape[2], d = x.shape[3];
  if (d % 2 != 0) fail(k, "head size %lld must be even", (long long)d);
  if (d > 1 && x.strides[3] != 1) fail(k, "the last axis of x must be contiguous");
  const int64_t half = d / 2;
  if (cos.ndim != 3 || (cos.shape[0] != 1 && cos.shape[0] != b) || cos.shape[1] != t || cos.shape[2] != half)
    fail(k, "cos/sin shape %s does not fit x %s (expected [1 or %lld, %lld, %lld])", cos.shape_str().c_str(),
         x.shape_str().c_str(), (long long)b, (long long)t, (long long)half);
  need_same_shape(k, "sin", sin, cos);
  const int64_t cb = cos.shape[0];
  const float sign = inverse ? -1.0f : 1.0f;
  const float* xp = static_cast<const float*>(x.base) + x.offset;
  const float* cp = cos.f();
  const float* sp = sin.f();
  float* op = out.f();
  parallel_rows(b * t, h * d, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t bt = lo; bt < hi; bt++) {
      const int64_t bi = bt / t, ti = bt % t;
      const float* cr = cp + ((cb == 1 ? 0 : bi) * t + ti) * half;
      const float* sr = sp + ((cb == 1 ? 0 : bi) * t + ti) * half;
      for (int64_t hi2 = 0; hi2 < h; hi2++) {
        const float* xr = xp + bi * x.strides[0] + ti * x.strides[1] + hi2 * x.strides[2];
        float* orow = op + (bt * h + hi2) * d;
#pragma omp simd
        for (int64_t j = 0; j < half; j++) {
          const float x1 = xr[j], x2 = xr[j + half], c = cr[j], s = sign * sr[j];
          // In double, so each output is rounded once, as in the js backend.
          orow[j] = (float)((double)x1 * c - (double)x2 * s);
          orow[j + half] = (float)((double)x2 * c + (double)x1 * s);
        }
      }
    }
  });
}

}  // namespace vera
