// Fused scaled dot-product attention, forward and backward: the CUDA twin of native/src/attention.cc.
// q [B, Tq, Hq, D], k/v [B, Tk, Hkv, D] are read in place (last stride 1, other strides free, so a fused
// qkv projection needs no copy); query head h reads kv head ⌊h / (Hq / Hkv)⌋ (grouped-query attention).
// Query i may see key j when the causal / sliding-window rules allow it (queries are the last Tq of the
// Tk positions: i sits at ip = i + Tk − Tq; causal: j ≤ ip; window w > 0: ip − j < w) and keyMask[b, j]
// is 1. All arithmetic is f32 FMA (no tensor cores); exp is CUDA's accurate expf.
//
// FlashAttention-2 in f32, llm.c style: the Tq × Tk scores never reach global memory. Every kernel works
// on a tile of BR query rows × BC keys held in shared memory, with a block of 256 threads laid out as a
// 16 × 16 grid (ty = tid / 16, tx = tid % 16). In a tile product thread (ty, tx) owns the rows ty·R ..
// ty·R + R − 1 of the left operand and the columns tx, tx + 16, tx + 32, ... of the right one, so the
// rows of one half-warp are the same (row reductions are 16-lane butterflies) and shared-memory reads
// are conflict-free (rows padded to an odd stride DMAX + 1). The head size is a template parameter
// DMAX ∈ {16, 32, 64, 96, 128, 256} (D ≤ DMAX, shared tiles zero-padded past D).
//
// forward, one block per (batch, query head, query tile), heaviest (last, under a causal mask) first:
//   Q tile → shared; m = −∞, l = 0, acc = 0 (per row: running max, running sum, output row in registers)
//   for each key tile that some row of the tile may see (the CPU's block_keys range):
//     K tile → shared; S = scale · Q Kᵀ, masked entries −∞
//     m' = max(m, rowmax S); α = exp(m − m'); P = exp(S − m'); l = α·l + rowsum P; acc = α·acc
//     P with dropped entries zeroed → shared; V tile → shared (over K); acc += P V
//   out = acc · (1/(1 − p)) / l, lse = m + log l; a row that saw no key: out 0, lse −∞.
//   l and lse are those of the undropped probabilities (AttentionOpts.dropout), as in attention.cc.
//
// backward, deterministic (no atomics; every output element is written by exactly one thread, its sum
// in a fixed order), probabilities recomputed from lse: P = exp(scale · q·k − lse), 0 where masked or
// where lse = −∞. With M the dropout multiplier (0 or 1/(1 − p), 1 without dropout):
//   Δ_i = rowsum(dO ∘ O)                                        attention_delta_kernel → scratch [B, Hq, Tq]
//   dS  = scale · P ∘ (M ∘ (dO Vᵀ) − Δ)
//   dV += (P ∘ M)ᵀ dO, dK += dSᵀ Q   attention_dkdv_kernel: one block per (batch, kv head, key tile), K/V
//        tile and dK/dV accumulators resident, looping over the query heads of the group, then the query
//        tiles that may see the key tile
//   dQ  = dS K                        attention_dq_kernel: one block per (batch, query head, query tile),
//        looping over key tiles
//   Both recompute S and dO Vᵀ; dq, dk and dv are fully overwritten (zero where nothing contributes).
//
// Dropout: (b, h, i, j) is kept when philox_bits24(seed, offset + ((b·Hq + h)·Tq + i)·Tk + j) ≥
// ceil(p · 2^24), the bits of native/src/philox.h. The keep bytes of a tile are drawn cooperatively into
// shared memory (fill_keep: one thread per Philox block of 4 consecutive indices, so its 10 rounds run
// once for up to 4 entries), identically in the forward and in both backward kernels.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "attention_common.cuh"
#include "attention_cudnn.h"
#include "bf16.cuh"
#include "device.cuh"
#include "kernels.h"

namespace vera {

namespace {

using namespace attn;

constexpr int kNT = 256;  // threads per block: the 16 × 16 grid

// ---- tile sizes ------------------------------------------------------------------------------------
// Shared memory per block: forward Q + K/V (one buffer) + P; dQ: Q, dO, K, V + dS; dK/dV: K, V, Q, dO +
// Pᵀ, dSᵀ; plus the tile's key visibility and dropout keep bytes. BR, BC multiples of 16.
template <int DMAX>
struct Tiles {
  static constexpr int FWD_BR = 64, FWD_BC = 64;
  static constexpr int DQ_BR = 64, DQ_BC = 64;
  static constexpr int KV_BR = 64, KV_BC = 64;
};
template <>
struct Tiles<256> {
  static constexpr int FWD_BR = 64, FWD_BC = 32;
  static constexpr int DQ_BR = 32, DQ_BC = 32;
  static constexpr int KV_BR = 32, KV_BC = 32;
};

template <int DMAX, int BR, int BC>
constexpr size_t fwd_smem() {
  return sizeof(float) * ((size_t)BR * (DMAX + 1) + (size_t)BC * (DMAX + 1) + (size_t)BR * (BC + 1)) + BC +
         BR * KeepLd<BC>::value;
}
template <int DMAX, int BR, int BC>
constexpr size_t dq_smem() {
  return sizeof(float) * (2 * (size_t)BR * (DMAX + 1) + 2 * (size_t)BC * (DMAX + 1) + (size_t)BR * (BC + 1) + 2 * BR) +
         BC + BR * KeepLd<BC>::value;
}
template <int DMAX, int BR, int BC>
constexpr size_t dkdv_smem() {
  return sizeof(float) * (2 * (size_t)BR * (DMAX + 1) + 2 * (size_t)BC * (DMAX + 1) + 2 * (size_t)BC * (BR + 1) + 2 * BR) +
         BC + BR * KeepLd<BC>::value;
}

// ---- device helpers --------------------------------------------------------------------------------

// dst[r][c] (row stride DMAX + 1) = src[r · rstride + c] for r < n, c < d; 0 elsewhere (r < ROWS,
// c < DMAX), so tile products may run over the whole tile.
template <int ROWS, int DMAX>
__device__ __forceinline__ void load_rows(float* dst, const float* __restrict__ src, long long rstride, int n, int d) {
  constexpr int LD = DMAX + 1;
  for (int t = threadIdx.x; t < ROWS * DMAX; t += kNT) {
    const int r = t / DMAX, c = t - r * DMAX;
    dst[r * LD + c] = (r < n && c < d) ? __ldg(src + r * rstride + c) : 0.0f;
  }
}

// acc[a][b] += Σ_d A[(ty·RA + a)·LD + d] · B[(tx + 16·b)·LD + d] for d < dlen (a multiple of 4).
template <int RA, int RB, int LD>
__device__ __forceinline__ void tile_nt(float (&acc)[RA][RB], const float* A, const float* B, int dlen, int ty, int tx) {
  const float* a = A + ty * RA * LD;
  const float* bp = B + tx * LD;
  for (int d = 0; d < dlen; d += 4) {
#pragma unroll
    for (int dd = 0; dd < 4; dd++) {
      float av[RA], bv[RB];
#pragma unroll
      for (int i = 0; i < RA; i++) av[i] = a[i * LD + d + dd];
#pragma unroll
      for (int j = 0; j < RB; j++) bv[j] = bp[16 * j * LD + d + dd];
#pragma unroll
      for (int i = 0; i < RA; i++)
#pragma unroll
        for (int j = 0; j < RB; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
  }
}

// acc[a][k] += Σ_{c < N} P[(ty·RA + a)·LDP + c] · V[c·LDV + tx + 16·k].
template <int RA, int DN, int N, int LDP, int LDV>
__device__ __forceinline__ void tile_nn(float (&acc)[RA][DN], const float* P, const float* V, int ty, int tx) {
  const float* pp = P + ty * RA * LDP;
  const float* vp = V + tx;
#pragma unroll 4
  for (int c = 0; c < N; c++) {
    float pv[RA], vv[DN];
#pragma unroll
    for (int i = 0; i < RA; i++) pv[i] = pp[i * LDP + c];
#pragma unroll
    for (int k = 0; k < DN; k++) vv[k] = vp[c * LDV + 16 * k];
#pragma unroll
    for (int i = 0; i < RA; i++)
#pragma unroll
      for (int k = 0; k < DN; k++) acc[i][k] = fmaf(pv[i], vv[k], acc[i][k]);
  }
}

// Max / sum over the 16 lanes of a half-warp (the threads sharing ty), the same value in all of them.
__device__ __forceinline__ float half_warp_max(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x = nan_max(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float half_warp_sum(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// ---- forward -------------------------------------------------------------------------------------

template <int DMAX, int BR, int BC>
__global__ void __launch_bounds__(kNT)
    attention_forward_kernel(const Params p, float* __restrict__ out, float* __restrict__ lse, int ntiles) {
  constexpr int LD = DMAX + 1, LDP = BC + 1, RM = BR / 16, RN = BC / 16, DN = DMAX / 16, KLD = KeepLd<BC>::value;
  extern __shared__ float smem[];
  float* Qs = smem;              // [BR][LD]
  float* KVs = Qs + BR * LD;     // [BC][LD]: the K tile, then the V tile
  float* Ps = KVs + BC * LD;     // [BR][LDP]
  uint8_t* kvis = reinterpret_cast<uint8_t*>(Ps + BR * LDP);  // [BC]
  uint8_t* keep = kvis + BC;                                  // [BR][KLD]

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int tile = ntiles - 1 - (int)(blockIdx.x % ntiles);
  const int bh = (int)(blockIdx.x / ntiles), h = bh % p.hq, b = bh / p.hq, g = h / p.group;
  const int i0 = tile * BR, nq = min(BR, p.tq - i0);
  int jlo, jhi;
  key_range(p, i0, i0 + nq, jlo, jhi);
  const int dlen = (p.d + 3) & ~3;
  const float* kb = p.kp<float>() + b * p.ks0 + g * p.ks2;
  const float* vb = p.vp<float>() + b * p.vs0 + g * p.vs2;

  load_rows<BR, DMAX>(Qs, p.qp<float>() + b * p.qs0 + i0 * p.qs1 + h * p.qs2, p.qs1, nq, p.d);

  float m[RM], l[RM], acc[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; r++) {
    m[r] = kNegInf;
    l[r] = 0.0f;
#pragma unroll
    for (int k = 0; k < DN; k++) acc[r][k] = 0.0f;
  }

  for (int j0 = jlo; j0 < jhi; j0 += BC) {
    const int nk = min(BC, jhi - j0);
    load_rows<BC, DMAX>(KVs, kb + j0 * p.ks1, p.ks1, nk, p.d);
    load_key_vis<BC>(kvis, p, b, j0, nk);
    if (p.drop) fill_keep<BR, BC>(keep, p, b, h, i0, nq, j0, nk);
    __syncthreads();

    float s[RM][RN];
#pragma unroll
    for (int r = 0; r < RM; r++)
#pragma unroll
      for (int c = 0; c < RN; c++) s[r][c] = 0.0f;
    tile_nt<RM, RN, LD>(s, Qs, KVs, dlen, ty, tx);

#pragma unroll
    for (int r = 0; r < RM; r++) {
      const int row = ty * RM + r, i = i0 + row;
      float mx = kNegInf;
#pragma unroll
      for (int c = 0; c < RN; c++) {
        const int col = tx + 16 * c;
        s[r][c] = (kvis[col] && position_visible(p, i, j0 + col)) ? p.scale * s[r][c] : kNegInf;
        mx = nan_max(mx, s[r][c]);
      }
      const float mnew = nan_max(m[r], half_warp_max(mx));
      // mnew = −∞: nothing visible so far; the row stays empty (α = 1, P = 0).
      const float alpha = mnew == kNegInf ? 1.0f : expf(m[r] - mnew);
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < RN; c++) {
        const int col = tx + 16 * c;
        const float e = mnew == kNegInf ? 0.0f : expf(s[r][c] - mnew);  // exp(−∞) = 0 for masked keys
        sum += e;
        Ps[row * LDP + col] = (p.drop && !keep[row * KLD + col]) ? 0.0f : e;
      }
      l[r] = l[r] * alpha + half_warp_sum(sum);
      m[r] = mnew;
#pragma unroll
      for (int k = 0; k < DN; k++) acc[r][k] *= alpha;
    }
    __syncthreads();  // P written, everyone done with K
    load_rows<BC, DMAX>(KVs, vb + j0 * p.vs1, p.vs1, nk, p.d);
    __syncthreads();
    tile_nn<RM, DN, BC, LDP, LD>(acc, Ps, KVs, ty, tx);
    __syncthreads();  // before the next tile overwrites KVs, kvis, keep
  }

#pragma unroll
  for (int r = 0; r < RM; r++) {
    const int row = ty * RM + r;
    if (row >= nq) continue;
    const int i = i0 + row;
    float* o = out + (((long long)b * p.tq + i) * p.hq + h) * p.d;
    const bool empty = m[r] == kNegInf;
    // 1/(1 − p) joins 1/l, formed in double as attention.cc does.
    const float inv = empty ? 0.0f : p.drop ? (float)(p.keep_scale_d / (double)l[r]) : 1.0f / l[r];
#pragma unroll
    for (int k = 0; k < DN; k++) {
      const int c = tx + 16 * k;
      if (c < p.d) o[c] = empty ? 0.0f : acc[r][k] * inv;
    }
    if (tx == 0) lse[((long long)b * p.hq + h) * p.tq + i] = empty ? kNegInf : (float)((double)m[r] + log((double)l[r]));
  }
}

// ---- backward ------------------------------------------------------------------------------------

// delta[(b·Hq + h)·Tq + i] = Σ_c dO[b, i, h, c] · O[b, i, h, c]: one warp per row, fixed order.
template <class T>
__global__ void __launch_bounds__(kNT)
    attention_delta_kernel(const T* __restrict__ o, long long os0, long long os1, long long os2,
                           const T* __restrict__ g, long long gs0, long long gs1, long long gs2,
                           float* __restrict__ delta, int tq, int hq, int d, long long rows) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (kNT / 32);
  for (long long row = (long long)blockIdx.x * (kNT / 32) + threadIdx.x / 32; row < rows; row += warps) {
    const long long i = row % tq, bh = row / tq, h = bh % hq, b = bh / hq;
    const T* orow = o + b * os0 + i * os1 + h * os2;
    const T* grow = g + b * gs0 + i * gs1 + h * gs2;
    float s = 0.0f;
    for (int c = lane; c < d; c += 32) s = fmaf(cu::ld(grow, c), cu::ld(orow, c), s);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) delta[row] = s;
  }
}

// Loads the query-side tiles of (b, h, rows i0 .. i0 + nq − 1): Q, dO, lse (−∞ past nq, which marks the
// row empty) and Δ.
template <int BR, int DMAX>
__device__ __forceinline__ void load_query_side(float* Qs, float* Gs, float* ls, float* ds, const Params& p, const Grad& gr,
                                                int b, int h, int i0, int nq) {
  load_rows<BR, DMAX>(Qs, p.qp<float>() + b * p.qs0 + i0 * p.qs1 + h * p.qs2, p.qs1, nq, p.d);
  load_rows<BR, DMAX>(Gs, gr.gp<float>() + b * gr.gs0 + i0 * gr.gs1 + h * gr.gs2, gr.gs1, nq, p.d);
  const long long base = ((long long)b * p.hq + h) * p.tq + i0;
  for (int r = threadIdx.x; r < BR; r += kNT) {
    ls[r] = r < nq ? __ldg(gr.lse + base + r) : kNegInf;
    ds[r] = r < nq ? __ldg(gr.delta + base + r) : 0.0f;
  }
}

// dK, dV of (b, kv head g, key tile): loops over the query heads of the group and their query tiles.
// Min-blocks 1 lets ptxas go past 128 registers (with 2 its cap, D = 64 and 96 spill a few bytes).
template <int DMAX, int BR, int BC>
__global__ void __launch_bounds__(kNT, 1)
    attention_dkdv_kernel(const Params p, const Grad gr, float* __restrict__ dk, float* __restrict__ dv, int ntiles) {
  constexpr int LD = DMAX + 1, LDT = BR + 1, RK = BC / 16, RQ = BR / 16, DN = DMAX / 16, KLD = KeepLd<BC>::value;
  extern __shared__ float smem[];
  float* Ks = smem;             // [BC][LD]
  float* Vs = Ks + BC * LD;     // [BC][LD]
  float* Qs = Vs + BC * LD;     // [BR][LD]
  float* Gs = Qs + BR * LD;     // [BR][LD] dO
  float* PT = Gs + BR * LD;     // [BC][LDT] (P ∘ M)ᵀ
  float* dST = PT + BC * LDT;   // [BC][LDT] dSᵀ
  float* ls = dST + BC * LDT;   // [BR] lse
  float* dls = ls + BR;         // [BR] Δ
  uint8_t* kvis = reinterpret_cast<uint8_t*>(dls + BR);  // [BC]
  uint8_t* keep = kvis + BC;                             // [BR][KLD] (query-major, as the forward's)

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int tile = (int)(blockIdx.x % ntiles);  // first key tiles see the most queries under a causal mask
  const int bg = (int)(blockIdx.x / ntiles), g = bg % p.hkv, b = bg / p.hkv;
  const int j0 = tile * BC, nk = min(BC, p.tk - j0);
  int ilo, ihi;
  query_range(p, j0, j0 + nk, ilo, ihi);
  const int dlen = (p.d + 3) & ~3;

  load_rows<BC, DMAX>(Ks, p.kp<float>() + b * p.ks0 + j0 * p.ks1 + g * p.ks2, p.ks1, nk, p.d);
  load_rows<BC, DMAX>(Vs, p.vp<float>() + b * p.vs0 + j0 * p.vs1 + g * p.vs2, p.vs1, nk, p.d);
  load_key_vis<BC>(kvis, p, b, j0, nk);

  float adk[RK][DN], adv[RK][DN];
#pragma unroll
  for (int a = 0; a < RK; a++)
#pragma unroll
    for (int k = 0; k < DN; k++) adk[a][k] = adv[a][k] = 0.0f;

  for (int h = g * p.group; h < (g + 1) * p.group; h++) {
    for (int i0 = ilo; i0 < ihi; i0 += BR) {
      const int nq = min(BR, ihi - i0);
      __syncthreads();  // the previous tile's readers are done
      load_query_side<BR, DMAX>(Qs, Gs, ls, dls, p, gr, b, h, i0, nq);
      if (p.drop) fill_keep<BR, BC>(keep, p, b, h, i0, nq, j0, nk);
      __syncthreads();

      float s[RK][RQ], dp[RK][RQ];
#pragma unroll
      for (int a = 0; a < RK; a++)
#pragma unroll
        for (int c = 0; c < RQ; c++) s[a][c] = dp[a][c] = 0.0f;
      tile_nt<RK, RQ, LD>(s, Ks, Qs, dlen, ty, tx);   // Sᵀ (unscaled)
      tile_nt<RK, RQ, LD>(dp, Vs, Gs, dlen, ty, tx);  // (dO Vᵀ)ᵀ
#pragma unroll
      for (int a = 0; a < RK; a++) {
        const int key = ty * RK + a;
#pragma unroll
        for (int c = 0; c < RQ; c++) {
          const int qr = tx + 16 * c;
          const bool vis = kvis[key] && position_visible(p, i0 + qr, j0 + key);
          float pd, ds;
          grad_entry(p, vis, ls[qr], dls[qr], keep[qr * KLD + key] != 0, s[a][c], dp[a][c], pd, ds);
          PT[key * LDT + qr] = pd;
          dST[key * LDT + qr] = ds;
        }
      }
      __syncthreads();
      tile_nn<RK, DN, BR, LDT, LD>(adv, PT, Gs, ty, tx);   // dV += (P ∘ M)ᵀ dO
      tile_nn<RK, DN, BR, LDT, LD>(adk, dST, Qs, ty, tx);  // dK += dSᵀ Q
    }
  }

#pragma unroll
  for (int a = 0; a < RK; a++) {
    const int key = ty * RK + a;
    if (key >= nk) continue;
    const long long row = (((long long)b * p.tk + j0 + key) * p.hkv + g) * p.d;
#pragma unroll
    for (int k = 0; k < DN; k++) {
      const int c = tx + 16 * k;
      if (c < p.d) {
        dk[row + c] = adk[a][k];
        dv[row + c] = adv[a][k];
      }
    }
  }
}

// dQ of (b, query head h, query tile): loops over the key tiles the tile may see.
template <int DMAX, int BR, int BC>
__global__ void __launch_bounds__(kNT)
    attention_dq_kernel(const Params p, const Grad gr, float* __restrict__ dq, int ntiles) {
  constexpr int LD = DMAX + 1, LDP = BC + 1, RM = BR / 16, RN = BC / 16, DN = DMAX / 16, KLD = KeepLd<BC>::value;
  extern __shared__ float smem[];
  float* Qs = smem;             // [BR][LD]
  float* Gs = Qs + BR * LD;     // [BR][LD] dO
  float* Ks = Gs + BR * LD;     // [BC][LD]
  float* Vs = Ks + BC * LD;     // [BC][LD]
  float* dSs = Vs + BC * LD;    // [BR][LDP]
  float* ls = dSs + BR * LDP;   // [BR]
  float* dls = ls + BR;         // [BR]
  uint8_t* kvis = reinterpret_cast<uint8_t*>(dls + BR);  // [BC]
  uint8_t* keep = kvis + BC;                             // [BR][KLD]

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int tile = ntiles - 1 - (int)(blockIdx.x % ntiles);
  const int bh = (int)(blockIdx.x / ntiles), h = bh % p.hq, b = bh / p.hq, g = h / p.group;
  const int i0 = tile * BR, nq = min(BR, p.tq - i0);
  int jlo, jhi;
  key_range(p, i0, i0 + nq, jlo, jhi);
  const int dlen = (p.d + 3) & ~3;
  const float* kb = p.kp<float>() + b * p.ks0 + g * p.ks2;
  const float* vb = p.vp<float>() + b * p.vs0 + g * p.vs2;

  load_query_side<BR, DMAX>(Qs, Gs, ls, dls, p, gr, b, h, i0, nq);

  float acc[RM][DN];
#pragma unroll
  for (int r = 0; r < RM; r++)
#pragma unroll
    for (int k = 0; k < DN; k++) acc[r][k] = 0.0f;

  for (int j0 = jlo; j0 < jhi; j0 += BC) {
    const int nk = min(BC, jhi - j0);
    load_rows<BC, DMAX>(Ks, kb + j0 * p.ks1, p.ks1, nk, p.d);
    load_rows<BC, DMAX>(Vs, vb + j0 * p.vs1, p.vs1, nk, p.d);
    load_key_vis<BC>(kvis, p, b, j0, nk);
    if (p.drop) fill_keep<BR, BC>(keep, p, b, h, i0, nq, j0, nk);
    __syncthreads();

    float s[RM][RN], dp[RM][RN];
#pragma unroll
    for (int r = 0; r < RM; r++)
#pragma unroll
      for (int c = 0; c < RN; c++) s[r][c] = dp[r][c] = 0.0f;
    tile_nt<RM, RN, LD>(s, Qs, Ks, dlen, ty, tx);
    tile_nt<RM, RN, LD>(dp, Gs, Vs, dlen, ty, tx);
#pragma unroll
    for (int r = 0; r < RM; r++) {
      const int qr = ty * RM + r;
      const float lse_i = ls[qr], delta_i = dls[qr];
#pragma unroll
      for (int c = 0; c < RN; c++) {
        const int key = tx + 16 * c;
        const bool vis = kvis[key] && position_visible(p, i0 + qr, j0 + key);
        float pd, ds;
        grad_entry(p, vis, lse_i, delta_i, keep[qr * KLD + key] != 0, s[r][c], dp[r][c], pd, ds);
        dSs[qr * LDP + key] = ds;
      }
    }
    __syncthreads();
    tile_nn<RM, DN, BC, LDP, LD>(acc, dSs, Ks, ty, tx);  // dQ += dS K
    __syncthreads();  // before the next tile overwrites K, V, dS
  }

#pragma unroll
  for (int r = 0; r < RM; r++) {
    const int row = ty * RM + r;
    if (row >= nq) continue;
    float* o = dq + (((long long)b * p.tq + i0 + row) * p.hq + h) * p.d;
#pragma unroll
    for (int k = 0; k < DN; k++) {
      const int c = tx + 16 * k;
      if (c < p.d) o[c] = acc[r][k];
    }
  }
}

// ---- host ----------------------------------------------------------------------------------------

struct Dims {
  int64_t b, tq, tk, hq, hkv, d, group;
};

// Row access checks of a [B, T, H, D] view with last stride 1 (attention.cc's check_head_view).
void check_head_view(const char* k, const char* what, const View& v, int64_t d) {
  need_float(k, what, v);
  if (v.ndim != 4) fail(k, "%s must be 4-D [B, T, H, D], got shape %s", what, v.shape_str().c_str());
  if (d > 1 && v.strides[3] != 1) fail(k, "the head axis (last) of %s must be contiguous", what);
  if (v.shape[1] > 1 && d > 0 && v.strides[1] < d)
    fail(k, "rows of %s overlap (time stride %lld < head size %lld)", what, (long long)v.strides[1], (long long)d);
}

constexpr int kMaxHead = 256;

Dims check_qkv(const char* k, const View& q, const View& kk, const View& v, const AttentionOpts& o) {
  if (q.ndim != 4 || kk.ndim != 4 || v.ndim != 4) fail(k, "expected 4-D q, k, v");
  Dims d;
  d.b = q.shape[0];
  d.tq = q.shape[1];
  d.hq = q.shape[2];
  d.d = q.shape[3];
  d.tk = kk.shape[1];
  d.hkv = kk.shape[2];
  if (kk.shape[0] != d.b || kk.shape[3] != d.d || !same_shape(kk, v) || (d.hkv == 0 ? d.hq != 0 : d.hq % d.hkv != 0))
    fail(k, "shapes q %s, k %s, v %s do not agree", q.shape_str().c_str(), kk.shape_str().c_str(), v.shape_str().c_str());
  check_head_view(k, "q", q, d.d);
  check_head_view(k, "k", kk, d.d);
  check_head_view(k, "v", v, d.d);
  d.group = d.hkv ? d.hq / d.hkv : 1;
  if (o.key_mask.present) {
    need_dtype(k, "keyMask", o.key_mask, DType::Bool);
    need_contig(k, "keyMask", o.key_mask);
    need_numel(k, "keyMask", o.key_mask, d.b * d.tk);
  }
  // Limits of this implementation (the CPU kernel has none).
  if (d.d > kMaxHead) fail(k, "head size %lld is above the CUDA kernel's limit of %d", (long long)d.d, kMaxHead);
  if (d.tq > INT_MAX || d.tk > INT_MAX || d.b * d.hq > INT_MAX)
    fail(k, "shapes q %s, k %s are too large for the CUDA kernel", q.shape_str().c_str(), kk.shape_str().c_str());
  return d;
}

Params make_params(const Dims& d, const View& q, const View& k, const View& v, const AttentionOpts& o) {
  Params p;
  const int es = dtype_bytes(q.dtype);
  p.q = static_cast<const char*>(q.base) + q.offset * es;
  p.k = static_cast<const char*>(k.base) + k.offset * es;
  p.v = static_cast<const char*>(v.base) + v.offset * es;
  p.qs0 = q.strides[0], p.qs1 = q.strides[1], p.qs2 = q.strides[2];
  p.ks0 = k.strides[0], p.ks1 = k.strides[1], p.ks2 = k.strides[2];
  p.vs0 = v.strides[0], p.vs1 = v.strides[1], p.vs2 = v.strides[2];
  p.mask = o.key_mask.present ? o.key_mask.ptr<uint8_t>() : nullptr;
  p.tq = (int)d.tq, p.tk = (int)d.tk, p.hq = (int)d.hq, p.hkv = (int)d.hkv, p.group = (int)d.group, p.d = (int)d.d;
  p.shift = d.tk - d.tq;
  p.window = o.window;
  p.causal = o.causal;
  p.scale = o.scale;
  p.drop = o.dropout.on;
  p.thresh = o.dropout.on ? cu::dropout_threshold(o.dropout.p) : 0;
  p.seed = o.dropout.seed;
  p.offset = o.dropout.offset;
  p.keep_scale_d = o.dropout.on ? 1.0 / (1.0 - o.dropout.p) : 1.0;
  p.keep_scale = (float)p.keep_scale_d;
  return p;
}

// Calls f(std::integral_constant<int, DMAX>) with the smallest supported DMAX ≥ d.
template <class F>
void with_head_size(int64_t d, F&& f) {
  if (d <= 16) f(std::integral_constant<int, 16>{});
  else if (d <= 32) f(std::integral_constant<int, 32>{});
  else if (d <= 64) f(std::integral_constant<int, 64>{});
  else if (d <= 96) f(std::integral_constant<int, 96>{});
  else if (d <= 128) f(std::integral_constant<int, 128>{});
  else f(std::integral_constant<int, 256>{});
}

template <int DMAX>
void launch_forward(const Params& p, float* out, float* lse, int64_t b, const char* kn) {
  constexpr int BR = Tiles<DMAX>::FWD_BR, BC = Tiles<DMAX>::FWD_BC;
  constexpr size_t smem = fwd_smem<DMAX, BR, BC>();
  auto kernel = attention_forward_kernel<DMAX, BR, BC>;
  static const bool ready = (allow_smem(kernel, smem, kn), true);
  (void)ready;
  const int64_t ntiles = (p.tq + BR - 1) / BR;
  kernel<<<grid_of(kn, b * p.hq * ntiles), kNT, smem, cu::stream()>>>(p, out, lse, (int)ntiles);
  cu::launched(kn);
}

template <int DMAX>
void launch_backward(const Params& p, const Grad& gr, float* dq, float* dk, float* dv, int64_t b, const char* kn) {
  constexpr int KBR = Tiles<DMAX>::KV_BR, KBC = Tiles<DMAX>::KV_BC;
  constexpr int QBR = Tiles<DMAX>::DQ_BR, QBC = Tiles<DMAX>::DQ_BC;
  constexpr size_t kv_smem = dkdv_smem<DMAX, KBR, KBC>(), q_smem = dq_smem<DMAX, QBR, QBC>();
  auto kv_kernel = attention_dkdv_kernel<DMAX, KBR, KBC>;
  auto q_kernel = attention_dq_kernel<DMAX, QBR, QBC>;
  static const bool ready = (allow_smem(kv_kernel, kv_smem, kn), allow_smem(q_kernel, q_smem, kn), true);
  (void)ready;
  const int64_t kv_tiles = (p.tk + KBC - 1) / KBC;
  if (b * p.hkv * kv_tiles > 0) {
    kv_kernel<<<grid_of(kn, b * p.hkv * kv_tiles), kNT, kv_smem, cu::stream()>>>(p, gr, dk, dv, (int)kv_tiles);
    cu::launched(kn);
  }
  const int64_t q_tiles = (p.tq + QBR - 1) / QBR;
  if (b * p.hq * q_tiles > 0) {
    q_kernel<<<grid_of(kn, b * p.hq * q_tiles), kNT, q_smem, cu::stream()>>>(p, gr, dq, (int)q_tiles);
    cu::launched(kn);
  }
}

// Every data view of the call has q's dtype (f32 or bf16): mixing them is an error naming the view.
void need_like_q(const char* k, const char* what, const View& v, const View& q) {
  need_float(k, what, v);
  if (v.dtype != q.dtype)
    fail(k, "%s is %s but q is %s (q, k, v, out and their gradients must share one dtype)", what, dtype_name(v.dtype),
         dtype_name(q.dtype));
}

void* data_of(const View& v) { return static_cast<char*>(v.base) + v.offset * dtype_bytes(v.dtype); }

// An f32 temporary holding a widened copy of v (dense over v's shape) when `fill`, else uninitialised.
struct Widened {
  cu::DeviceTemp mem;
  View view;
  Widened(const View& v, bool fill, const char* k)
      : mem((size_t)v.numel() * sizeof(float), k), view(dense_like(v, DType::F32, mem.p, fill)) {}
};

// The call as cuDNN's fused attention takes it (attention_cudnn.cc): bf16, no key mask, no dropout.
bool cudnn_may(const View& q, const AttentionOpts& o) {
  return o.low_precision && q.dtype == DType::BF16 && !o.key_mask.present && !o.dropout.on;
}

attn::CudnnCall cudnn_call(const Dims& d, const View& q, const View& k, const View& v, const AttentionOpts& o) {
  attn::CudnnCall c;
  c.b = d.b, c.tq = d.tq, c.tk = d.tk, c.hq = d.hq, c.hkv = d.hkv, c.d = d.d;
  c.q = data_of(q), c.k = data_of(k), c.v = data_of(v);
  for (int i = 0; i < 3; i++) c.qs[i] = q.strides[i], c.ks[i] = k.strides[i], c.vs[i] = v.strides[i];
  c.causal = o.causal;
  c.window = o.window;
  c.scale = o.scale;
  return c;
}

}  // namespace

// bf16 views (bf16 activations): with lowPrecision cuDNN's fused attention where it takes the call,
// else the tensor-core kernels read and write them as they
// are; otherwise (or where those kernels cannot take the call: head size above 128, no tensor cores)
// they are widened into f32 temporaries, the f32 kernels run, and the outputs are rounded once.
void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const AttentionOpts& o) {
  const char* kn = "attention";
  const Dims d = check_qkv(kn, q, k, v, o);
  need_float_contig(kn, "output", out);
  need_same_shape(kn, "output", out, q);
  need_like_q(kn, "k", k, q);
  need_like_q(kn, "v", v, q);
  need_like_q(kn, "output", out, q);
  need_f32_contig(kn, "lse", lse);
  need_numel(kn, "lse", lse, d.b * d.hq * d.tq);
  if (d.b * d.hq * d.tq == 0) return;  // nothing to write
  const bool bf16 = q.dtype == DType::BF16;
  if (cudnn_may(q, o) && attn::cudnn_forward(cudnn_call(d, q, k, v, o), data_of(out), lse.f(), kn)) return;
  const Params p = make_params(d, q, k, v, o);
  if (o.low_precision && tc_forward(p, data_of(out), bf16, lse.f(), d.b, kn)) {
    if (bf16 && cu::profiling()) cu::profile_label("attention (bf16 views, tensor cores)");
    return;
  }
  if (bf16) {
    const Widened q32(q, true, kn), k32(k, true, kn), v32(v, true, kn), o32(out, false, kn);
    attention(o32.view, lse, q32.view, k32.view, v32.view, o);
    copy(out, o32.view);
    if (cu::profiling()) cu::profile_label("attention (bf16 views widened to f32)");
    return;
  }
  with_head_size(d.d, [&](auto dm) { launch_forward<decltype(dm)::value>(p, out.f(), lse.f(), d.b, kn); });
}

void attention_backward(const View& dq, const View& dk, const View& dv, const View& dout, const View& q, const View& k,
                        const View& v, const View& out, const View& lse, const AttentionOpts& o) {
  const char* kn = "attentionBackward";
  const Dims d = check_qkv(kn, q, k, v, o);
  check_head_view(kn, "out", out, d.d);
  check_head_view(kn, "dout", dout, d.d);
  need_same_shape(kn, "out", out, q);
  need_same_shape(kn, "dout", dout, q);
  need_float_contig(kn, "dq", dq);
  need_float_contig(kn, "dk", dk);
  need_float_contig(kn, "dv", dv);
  need_same_shape(kn, "dq", dq, q);
  need_same_shape(kn, "dk", dk, k);
  need_same_shape(kn, "dv", dv, v);
  const View* const same[] = {&k, &v, &out, &dout, &dq, &dk, &dv};
  const char* const names[] = {"k", "v", "out", "dout", "dq", "dk", "dv"};
  for (int i = 0; i < 7; i++) need_like_q(kn, names[i], *same[i], q);
  need_f32_contig(kn, "lse", lse);
  need_numel(kn, "lse", lse, d.b * d.hq * d.tq);
  if (d.d == 0) return;  // dq, dk, dv are empty
  const bool bf16 = q.dtype == DType::BF16;
  if (cudnn_may(q, o) && out.contiguous()) {
    const int64_t dos[3] = {dout.strides[0], dout.strides[1], dout.strides[2]};
    if (attn::cudnn_backward(cudnn_call(d, q, k, v, o), data_of(out), data_of(dout), dos, lse.f(), data_of(dq),
                             data_of(dk), data_of(dv), kn))
      return;
  }
  const Params p = make_params(d, q, k, v, o);
  const int64_t rows = d.b * d.hq * d.tq;
  auto delta_of = [&](float* delta) {
    cu::with_float(q.dtype, [&](auto t) {
      using T = decltype(t);
      attention_delta_kernel<T><<<cu::grid_for(rows * 32), kNT, 0, cu::stream()>>>(
          cu::at<const T>(out), out.strides[0], out.strides[1], out.strides[2], cu::at<const T>(dout), dout.strides[0],
          dout.strides[1], dout.strides[2], delta, (int)d.tq, (int)d.hq, (int)d.d, (long long)rows);
    });
    cu::launched(kn);
  };
  if (bf16 && !o.low_precision) {
    // Widened: the f32 kernels, outputs rounded once.
    const Widened q32(q, true, kn), k32(k, true, kn), v32(v, true, kn), o32(out, true, kn), g32(dout, true, kn);
    const Widened dq32(dq, false, kn), dk32(dk, false, kn), dv32(dv, false, kn);
    attention_backward(dq32.view, dk32.view, dv32.view, g32.view, q32.view, k32.view, v32.view, o32.view, lse, o);
    copy(dq, dq32.view);
    copy(dk, dk32.view);
    copy(dv, dv32.view);
    if (cu::profiling()) cu::profile_label("attentionBackward (bf16 views widened to f32)");
    return;
  }
  float* delta = nullptr;
  if (rows > 0) {
    delta = static_cast<float*>(cu::scratch((size_t)rows * sizeof(float), 0));
    delta_of(delta);
  }
  const Grad gr{data_of(dout), dout.strides[0], dout.strides[1], dout.strides[2], lse.f(), delta};
  if (o.low_precision && tc_backward(p, gr, data_of(dq), data_of(dk), data_of(dv), bf16, d.b, kn)) {
    if (bf16 && cu::profiling()) cu::profile_label("attentionBackward (bf16 views, tensor cores)");
    return;
  }
  if (bf16) {
    // lowPrecision, but no tensor-core kernel for this call: widened, as without lowPrecision.
    AttentionOpts o2 = o;
    o2.low_precision = false;
    attention_backward(dq, dk, dv, dout, q, k, v, out, lse, o2);
    return;
  }
  with_head_size(d.d, [&](auto dm) { launch_backward<decltype(dm)::value>(p, gr, dq.f(), dk.f(), dv.f(), d.b, kn); });
}

}  // namespace vera
