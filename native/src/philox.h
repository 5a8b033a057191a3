// Philox4x32-10 (Salmon et al., SC'11), the C++ twin of src/backends/philox.ts: dropout's uniform
// u(seed, j) = (word[j mod 4] of block ⌊j/4⌋) >> 8 · 2^-24, bit-identical to the TypeScript.
#pragma once

#include <cstdint>

namespace vera {

struct Philox4 {
  uint32_t w[4];
};

// Counter (c0, c1, 0, 0), key (k0, k1).
inline Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
  uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
  for (int r = 0; r < 10; r++) {
    const uint64_t p0 = (uint64_t)0xd2511f53u * x0;
    const uint64_t p1 = (uint64_t)0xcd9e8d57u * x2;
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    const uint32_t n0 = hi1 ^ x1 ^ k0;
    const uint32_t n2 = hi0 ^ x3 ^ k1;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return Philox4{{x0, x1, x2, x3}};
}

// The 24-bit integer behind the uniform of absolute index j (u = bits · 2^-24).
inline uint32_t philox_bits24(uint64_t seed, uint64_t j) {
  const uint64_t b = j >> 2;
  const Philox4 p = philox4x32((uint32_t)b, (uint32_t)(b >> 32), (uint32_t)seed, (uint32_t)(seed >> 32));
  return p.w[j & 3] >> 8;
}

}  // namespace vera
