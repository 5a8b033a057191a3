// Rotary position embedding with HF's rotate_half layout over the head axis of x [B, T, H, D] (last
// stride 1, other strides free, so q/k are read in place from a fused projection); cos/sin tables
// [B or 1, T, D/2] hold each angle once; out is contiguous. The backward negates sin (inverse). The
// CUDA twin of native/src/rope.cc: one thread per rotated pair (j, j + D/2), grid-stride, each output
// formed in double and rounded once, as the CPU and js backends do. x and out may be f32 or bf16 each
// (bf16 activations; cos/sin stay f32): bf16 x is widened exactly, a bf16 out is the f32 value rounded.
#include "bf16.cuh"
#include "device.cuh"
#include "kernels.h"

namespace vera {

namespace {

template <class TO, class TX>
__global__ void __launch_bounds__(cu::kThreads)
    rope_kernel(TO* __restrict__ out, const TX* __restrict__ x, const float* __restrict__ cos,
                const float* __restrict__ sin, int64_t t, int64_t h, int64_t half, int64_t cb, int64_t xs0,
                int64_t xs1, int64_t xs2, float sign, int64_t total) {
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = idx % half;
    const int64_t row = idx / half;  // (bi · T + ti) · H + hi
    const int64_t hi = row % h, bt = row / h;
    const int64_t bi = bt / t, ti = bt % t;
    const int64_t co = ((cb == 1 ? 0 : bi) * t + ti) * half + j;
    const TX* xr = x + bi * xs0 + ti * xs1 + hi * xs2;
    TO* orow = out + row * 2 * half;
    const float x1 = cu::ld(xr, j), x2 = cu::ld(xr, j + half), c = cos[co], s = sign * sin[co];
    // In double, so each output is rounded once (to f32), as in the js backend (the products are exact).
    cu::st(orow, j, (float)((double)x1 * c - (double)x2 * s));
    cu::st(orow, j + half, (float)((double)x2 * c + (double)x1 * s));
  }
}

}  // namespace

void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse) {
  const char* k = "rope";
  need_float(k, "x", x);
  need_float_contig(k, "output", out);
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
  const int64_t total = b * t * h * half;
  if (total == 0) return;
  const float sign = inverse ? -1.0f : 1.0f;
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(x.dtype, [&](auto tx) {
      using TO = decltype(to);
      using TX = decltype(tx);
      rope_kernel<TO, TX><<<cu::grid_for(total), cu::kThreads, 0, cu::stream()>>>(cu::at<TO>(out), cu::at<const TX>(x), cos.f(),
                                                                                 sin.f(), t, h, half, cos.shape[0], x.strides[0],
                                                                                 x.strides[1], x.strides[2], sign, total);
    });
  });
  cu::launched(k);
}

}  // namespace vera
