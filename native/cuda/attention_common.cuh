// What the attention kernels share: the f32 FlashAttention-2 kernels (attention.cu) and the bf16
// tensor-core ones (attention_tc.cu) address q, k, v, decide visibility and draw dropout identically, so
// the two paths differ only in the precision of their tile products. q, k, v, dO (and out, dq, dk, dv)
// are f32 or, on the tensor-core path, bf16 (bf16 activations): Params holds untyped pointers and each
// kernel reads them as its element type T.
#pragma once
#include <climits>
#include <cmath>
#include <cstdint>

#include "device.cuh"
#include "kernels.h"

namespace vera {
namespace attn {

constexpr float kNegInf = -INFINITY;

// Everything a kernel needs to address q, k, v and to decide visibility and dropout.
struct Params {
  const void* q;  // of the kernel's element type (f32, or bf16 on the tensor-core path)
  const void* k;
  const void* v;
  long long qs0, qs1, qs2, ks0, ks1, ks2, vs0, vs1, vs2;  // batch, time, head strides (elements)
  const uint8_t* mask;                                     // keyMask [B, Tk] or null
  int tq, tk, hq, hkv, group, d;
  long long shift;   // Tk − Tq: query i sits at position i + shift
  long long window;  // 0 = none
  bool causal;
  float scale;
  bool drop;
  uint32_t thresh;     // keep when bits24 ≥ thresh
  uint64_t seed, offset;
  float keep_scale;     // 1/(1 − p) in f32 (backward)
  double keep_scale_d;  // 1/(1 − p) in double (forward's final multiplier, as attention.cc)
  template <class T>
  __device__ __forceinline__ const T* qp() const { return static_cast<const T*>(q); }
  template <class T>
  __device__ __forceinline__ const T* kp() const { return static_cast<const T*>(k); }
  template <class T>
  __device__ __forceinline__ const T* vp() const { return static_cast<const T*>(v); }
};

// The backward's extra inputs: dO (strided like q), lse and Δ (both [B, Hq, Tq] contiguous).
struct Grad {
  const void* dout;  // q's element type
  long long gs0, gs1, gs2;
  const float* lse;
  const float* delta;
  template <class T>
  __device__ __forceinline__ const T* gp() const { return static_cast<const T*>(dout); }
};

// Row stride (bytes) of a tile's keep bytes: BC + 4 puts the rows of one column in distinct banks (the
// dK/dV kernel reads them column-wise).
template <int BC>
struct KeepLd {
  static constexpr int value = BC + 4;
};

// May query i see key j by position (causal / window)? The key mask is checked separately (kvis).
__device__ __forceinline__ bool position_visible(const Params& p, int i, int j) {
  const long long ip = (long long)i + p.shift;
  if (p.causal && (long long)j > ip) return false;
  if (p.window > 0 && ip - j >= p.window) return false;
  return true;
}

// Whether every (query, key) of [i0, i1) × [j0, j1) is visible by position with no key mask: the
// tensor-core kernels then skip the per-score test (most tiles of a causal mask lie below its diagonal).
__device__ __forceinline__ bool tile_visible(const Params& p, int i0, int i1, int j0, int j1) {
  if (p.mask || i1 <= i0 || j1 <= j0) return false;
  if (p.causal && (long long)(j1 - 1) > (long long)i0 + p.shift) return false;
  if (p.window > 0 && (long long)(i1 - 1) + p.shift - j0 >= p.window) return false;
  return true;
}

// Keys [jlo, jhi) that at least one query of [i0, i1) may see by position (attention.cc's block_keys).
__device__ __forceinline__ void key_range(const Params& p, int i0, int i1, int& jlo, int& jhi) {
  long long lo = p.window > 0 ? max(0LL, (long long)i0 + p.shift - p.window + 1) : 0LL;
  long long hi = p.causal ? min((long long)p.tk, max(0LL, (long long)i1 + p.shift)) : (long long)p.tk;
  lo = min(lo, (long long)p.tk);
  if (hi < lo) hi = lo;
  jlo = (int)lo;
  jhi = (int)hi;
}

// Queries [ilo, ihi) that may see at least one key of [j0, j1) by position (j1 > j0).
__device__ __forceinline__ void query_range(const Params& p, int j0, int j1, int& ilo, int& ihi) {
  long long lo = p.causal ? max(0LL, (long long)j0 - p.shift) : 0LL;
  long long hi = p.tq;
  if (p.window > 0) hi = min(hi, (long long)(j1 - 1) + p.window - p.shift);
  lo = min(lo, (long long)p.tq);
  if (hi < lo) hi = lo;
  ilo = (int)lo;
  ihi = (int)hi;
}

// kvis[c] = 1 when key j0 + c exists (c < nk) and keyMask allows it.
template <int BC, int NT = 256>
__device__ __forceinline__ void load_key_vis(uint8_t* kvis, const Params& p, int b, int j0, int nk) {
  for (int c = threadIdx.x; c < BC; c += NT)
    kvis[c] = (c < nk && (!p.mask || p.mask[(long long)b * p.tk + j0 + c] != 0)) ? 1 : 0;
}

// keep[r · KeepLd + c] = dropout keep bit of (b, h, query i0 + r, key j0 + c), for r < nq, c < nk (other
// entries untouched). Row r's indices are consecutive, start s = offset + ((b·Hq + h)·Tq + i0 + r)·Tk + j0,
// and touch at most BC/4 + 1 Philox blocks; one thread per (row, block) draws the block's 4 words once
// (the four philox_bits24 calls share their counter, so the compiler keeps one set of rounds).
template <int BR, int BC, int NT = 256>
__device__ __forceinline__ void fill_keep(uint8_t* keep, const Params& p, int b, int h, int i0, int nq, int j0, int nk) {
  constexpr int NB = BC / 4 + 1;
  const uint64_t row0 = p.offset + (((uint64_t)b * p.hq + h) * p.tq + (uint64_t)i0) * p.tk + (uint64_t)j0;
  for (int t = threadIdx.x; t < BR * NB; t += NT) {
    const int r = t / NB, blk = t - r * NB;
    if (r >= nq) break;  // r grows with t
    const uint64_t s = row0 + (uint64_t)r * p.tk, e = s + (uint64_t)nk;
    const uint64_t bi = (s >> 2) + (uint64_t)blk;
    if ((bi << 2) >= e) continue;
    uint32_t w[4];
#pragma unroll
    for (int c = 0; c < 4; c++) w[c] = cu::philox_bits24(p.seed, (bi << 2) | (uint64_t)c);
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const uint64_t j = (bi << 2) | (uint64_t)c;
      if (j >= s && j < e) keep[r * KeepLd<BC>::value + (int)(j - s)] = w[c] >= p.thresh ? 1 : 0;
    }
  }
}

// A max that keeps NaN (fmaxf drops it): a row of NaN scores must give NaN, not an empty row.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? NAN : fmaxf(a, b); }

// P, its dropped version Pd = P·M and dS of one (query, key) entry, given q·k (s) and dO·v (dp).
// FAST (the bf16 tensor-core kernels, whose P is rounded to bf16 next): exp through the hardware's
// __expf, a few ulps of f32 from expf and far below that rounding.
template <bool FAST = false>
__device__ __forceinline__ void grad_entry(const Params& p, bool visible, float lse_i, float delta_i, bool kept, float s,
                                           float dp, float& pd, float& ds) {
  // A row without any visible key (lse = −∞) has P = 0, as attention.cc and the js reference.
  const float x = p.scale * s - lse_i;
  const float pr = (visible && lse_i != kNegInf) ? (FAST ? __expf(x) : expf(x)) : 0.0f;
  const float mult = p.drop ? (kept ? p.keep_scale : 0.0f) : 1.0f;
  pd = pr * mult;
  ds = pr * (mult * dp - delta_i) * p.scale;
}

// Blocks of a 1-D grid of n tasks (n ≤ INT_MAX checked here).
inline unsigned grid_of(const char* kn, int64_t n) {
  if (n > INT_MAX) fail(kn, "too many attention tiles (%lld) for one launch", (long long)n);
  return (unsigned)n;
}

// Lets `kernel` use `bytes` of dynamic shared memory (once per kernel; > 48 KiB needs an opt-in).
template <class Kernel>
inline void allow_smem(Kernel kernel, size_t bytes, const char* kn) {
  if (bytes <= 48 * 1024) return;
  int dev = 0, optin = 0;
  cu::check(cudaGetDevice(&dev), kn, "cudaGetDevice");
  cu::check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), kn, "shared memory limit");
  if ((size_t)optin < bytes)
    fail(kn, "this device allows %d bytes of shared memory per block, the kernel needs %zu", optin, bytes);
  cu::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), kn,
            "cudaFuncSetAttribute");
}

// The bf16 tensor-core kernels (attention_tc.cu), for head sizes up to 128 on sm_80 and later; false
// when they cannot take the call (the caller then runs the f32 kernels). b is the batch size. With
// `bf16` q, k, v, dO and out, dq, dk, dv are bf16 (read as they are, written rounded), else f32.
bool tc_forward(const Params& p, void* out, bool bf16, float* lse, int64_t b, const char* kn);
bool tc_backward(const Params& p, const Grad& gr, void* dq, void* dk, void* dv, bool bf16, int64_t b, const char* kn);

}  // namespace attn
}  // namespace vera
