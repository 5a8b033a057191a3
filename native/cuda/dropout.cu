// Inverted dropout of a contiguous view with Philox4x32-10: element i is kept when
// u(seed, offset + i) >= p and scaled by 1/(1 − p), the product formed in double and rounded to f32
// (as native/src/dropout.cc and the js backend). The CUDA twin of dropout.cc: one thread per Philox
// block (4 consecutive absolute indices, one counter), grid-stride, so each block's 10 rounds run once
// for its 4 words rather than once per element. a and out may be f32 or bf16 each (bf16 activations):
// the same mask, a bf16 a widened exactly, a bf16 out the f32 product rounded once more.
#include "bf16.cuh"
#include "device.cuh"
#include "kernels.h"

namespace vera {

namespace {

// The four words of Philox4x32-10 for counter (b, 0, 0) and key seed: the arithmetic of
// cu::philox_bits24 (device.cuh) and native/src/philox.h, all words at once.
__device__ inline uint4 philox4(uint64_t b, uint64_t seed) {
  uint32_t x0 = (uint32_t)b, x1 = (uint32_t)(b >> 32), x2 = 0, x3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    const uint32_t hi0 = __umulhi(0xd2511f53u, x0), lo0 = 0xd2511f53u * x0;
    const uint32_t hi1 = __umulhi(0xcd9e8d57u, x2), lo1 = 0xcd9e8d57u * x2;
    const uint32_t n0 = hi1 ^ x1 ^ k0;
    const uint32_t n2 = hi0 ^ x3 ^ k1;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return make_uint4(x0, x1, x2, x3);
}

// Philox blocks b0 .. b0 + blocks − 1 cover absolute indices [offset, offset + n).
template <class TO, class TA>
__global__ void __launch_bounds__(cu::kThreads)
    dropout_kernel(TO* __restrict__ out, const TA* __restrict__ a, int64_t n, uint64_t seed, uint64_t offset,
                   uint64_t b0, int64_t blocks, uint32_t thresh, double scale) {
  const uint64_t end = offset + (uint64_t)n;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < blocks; q += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t b = b0 + (uint64_t)q;
    const uint4 w = philox4(b, seed);
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const uint64_t j = 4 * b + (uint64_t)c;
      if (j < offset || j >= end) continue;
      const uint64_t i = j - offset;
      cu::st(out, i, (words[c] >> 8) >= thresh ? (float)((double)cu::ld(a, i) * scale) : 0.0f);
    }
  }
}

}  // namespace

void dropout(const View& out, const View& a, double p, uint64_t seed, uint64_t offset) {
  const char* k = "dropout";
  need_float_contig(k, "input", a);
  need_float_contig(k, "output", out);
  need_same_shape(k, "output", out, a);
  if (!(p >= 0 && p < 1)) fail(k, "p = %g must be in [0, 1)", p);
  const int64_t n = a.numel();
  if (n == 0) return;
  const double scale = 1.0 / (1.0 - p);
  const uint32_t thresh = cu::dropout_threshold(p);
  const uint64_t b0 = offset >> 2, b1 = (offset + (uint64_t)n - 1) >> 2;
  const int64_t blocks = (int64_t)(b1 - b0 + 1);
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(a.dtype, [&](auto ta) {
      using TO = decltype(to);
      using TA = decltype(ta);
      dropout_kernel<TO, TA><<<cu::grid_for(blocks), cu::kThreads, 0, cu::stream()>>>(cu::at<TO>(out), cu::at<const TA>(a), n, seed,
                                                                                     offset, b0, blocks, thresh, scale);
    });
  });
  cu::launched(k);
}

}  // namespace vera
