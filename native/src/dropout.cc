// Inverted dropout of a contiguous view with Philox4x32-10: element i is kept when
// u(seed, offset + i) >= p and scaled by 1/(1 − p). The mask comes from philox_dropout_span
// (philox.h), which the attention kernels' probability dropout shares.
#include <algorithm>

#include "kernels.h"
#include "philox.h"
#include "views.h"

namespace vera {

void dropout(const View& out, const View& a, double p, uint64_t seed, uint64_t offset) {
  const char* k = "dropout";
  need_f32_contig(k, "input", a);
  need_f32_contig(k, "output", out);
  need_same_shape(k, "output", out, a);
  if (!(p >= 0 && p < 1)) fail(k, "p = %g must be in [0, 1)", p);
  const int64_t n = a.numel();
  if (n == 0) return;
  const float* x = a.f();
  float* o = out.f();
  const double scale = 1.0 / (1.0 - p);
  const uint32_t thresh = philox_keep_threshold(p);
  // Threads take whole groups of Philox blocks: absolute indices [offset, offset + n) start in the
  // group whose first element is e0.
  const uint64_t e0 = (offset >> 2) * 4, end = offset + (uint64_t)n;
  const int64_t groups = (int64_t)((end - e0 + kPhiloxGroup - 1) / kPhiloxGroup);
  parallel_blocks(groups, kGrainHeavy / kPhiloxGroup, [&](int64_t lo, int64_t hi) {
    const uint64_t j0 = std::max<uint64_t>(offset, e0 + (uint64_t)lo * kPhiloxGroup);
    const uint64_t j1 = std::min<uint64_t>(end, e0 + (uint64_t)hi * kPhiloxGroup);
    philox_dropout_span(x + (j0 - offset), o + (j0 - offset), (int64_t)(j1 - j0), j0, seed, thresh, scale);
  });
}

}  // namespace vera
