// FlashAttention-2 on bf16 tensor cores (mma.sync m16n8k16, f32 accumulation): the attention of the
// mixed-precision policy (AttentionOpts.low_precision, set when a model's weights are bf16, as under
// torch.autocast, whose SDPA runs on bf16 q, k and v). q, k and v (and dO) are rounded to bf16 as their
// tiles enter shared memory when they are f32 in memory, read as they are when they are bf16 views (bf16
// activations, whose out, dq, dk and dv are then written rounded to bf16), and so are P and dS before
// their products with V, dO, K and Q, as
// FlashAttention does; the softmax statistics, lse, Δ and every accumulator stay f32. Visibility, key
// masks, dropout (the same Philox keep bits), empty rows and NaN follow the f32 kernels
// (attention_common.cuh), so the two paths differ by rounding only; exp is the hardware's __expf (a few
// f32 ulps, below the bf16 rounding of P), and a key tile every query of the block sees by position,
// with no key mask, skips the per-score visibility test.
//
// A block is 4 warps; a warp owns 16 rows of its tile's left operand (queries in the forward and in dQ,
// keys in dK/dV), so a row's accumulator fragment sits in the 4 lanes of one quad and every row
// reduction is two shuffles. Fragment layouts are PTX's for m16n8k16 (g = lane / 4, t = 2·(lane % 4)):
//   A (16 × 16, row-major): {(g, t..t+1), (g+8, t..t+1), (g, t+8..t+9), (g+8, t+8..t+9)}
//   B (16 × 8, k × n):      {(k t..t+1, n g), (k t+8..t+9, n g)}
//   C (16 × 8):             {(g, t), (g, t+1), (g+8, t), (g+8, t+1)}
// so a C fragment pair of n-tiles 2κ, 2κ+1 is the A fragment of k-chunk κ: P and dS go from the
// accumulators to the next product without shared memory. Every tile sits in shared memory as loaded,
// [rows][DMAX] (bf16, rows padded by 8 elements so the rows of a fragment load hit distinct banks): a B
// operand stored [n][k] (K for Q·Kᵀ) is read with 32-bit loads, one stored [k][n] (V for P·V, K for
// dS·K, Q and dO for dK and dV) with ldmatrix.trans, so no tile is transposed or loaded twice.
#include <cuda_bf16.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <type_traits>

#include "attention_common.cuh"
#include "bf16.cuh"

namespace vera {
namespace attn {
namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kBR = 64;        // forward, dQ: query rows per block (16 per warp)
constexpr int kBC = 64;        // keys per tile (forward, dQ), keys per block in dK/dV (16 per warp)
constexpr int kQB = 32;        // dK/dV: query rows per inner tile

using bf16 = uint16_t;  // the bits of a bfloat16

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low half
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t ld32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c += a·b on one m16n8k16 tile.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The A fragment of rows m0.. and columns k0.. of a row-major tile with row stride LD.
template <int LD>
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const bf16* T, int m0, int k0, int lane) {
  const bf16* p = T + (m0 + (lane >> 2)) * LD + k0 + 2 * (lane & 3);
  a[0] = ld32(p);
  a[1] = ld32(p + 8 * LD);
  a[2] = ld32(p + 8);
  a[3] = ld32(p + 8 * LD + 8);
}

// The B fragment (k0.., n0..) of an operand stored as [n][k] with row stride LD.
template <int LD>
__device__ __forceinline__ void frag_b(uint32_t (&b)[2], const bf16* T, int n0, int k0, int lane) {
  const bf16* p = T + (n0 + (lane >> 2)) * LD + k0 + 2 * (lane & 3);
  b[0] = ld32(p);
  b[1] = ld32(p + 8);
}

// The B fragments of n-tiles n0.. and n0 + 8.. (k0..) of an operand stored [k][n] with row stride LD:
// ldmatrix.x4.trans, lanes 8·m..8·m + 7 addressing the rows of 8 × 8 matrix m (k halves in m's bit 0,
// n-tiles in bit 1); b0 is n-tile n0's fragment, b1 n0 + 8's.
template <int LD>
__device__ __forceinline__ void frag_b_trans2(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16* T, int n0, int k0,
                                              int lane) {
  const bf16* p = T + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0 + (lane >> 4) * 8;
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(b0[0]), "=r"(b0[1]), "=r"(b1[0]), "=r"(b1[1])
               : "r"(addr));
}

// ldmatrix forms of frag_a and of two frag_b calls (VERA_CUDA_ATTN_LDMATRIX=1, experimental until
// measured on a GPU): one ldmatrix.x4 instead of four (A) or four (two B fragments) 32-bit shared loads,
// the same registers. Lanes 8·m..8·m + 7 address the rows of 8 × 8 matrix m: for A, m's bit 0 picks
// the row half (m0 or m0 + 8) and bit 1 the k half; for B stored [n][k], bit 0 the k half and bit 1
// the n-tile (n0 or n0 + 8). Rows are 16-byte aligned: LD·2 bytes is a multiple of 16.
template <int LD>
__device__ __forceinline__ void frag_a_ldm(uint32_t (&a)[4], const bf16* T, int m0, int k0, int lane) {
  const bf16* p = T + (m0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + k0 + (lane >> 4) * 8;
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(addr));
}
template <int LD>
__device__ __forceinline__ void frag_b2_ldm(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16* T, int n0, int k0,
                                            int lane) {
  const bf16* p = T + (n0 + (lane & 7) + (lane >> 4) * 8) * LD + k0 + ((lane >> 3) & 1) * 8;
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(b0[0]), "=r"(b0[1]), "=r"(b1[0]), "=r"(b1[1])
               : "r"(addr));
}
// The A fragment and the B fragments of n-tiles n0, n0 + 8 through either form.
template <bool LDM, int LD>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* T, int m0, int k0, int lane) {
  if (LDM) frag_a_ldm<LD>(a, T, m0, k0, lane);
  else frag_a<LD>(a, T, m0, k0, lane);
}
template <bool LDM, int LD>
__device__ __forceinline__ void load_b2(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16* T, int n0, int k0, int lane) {
  if (LDM) {
    frag_b2_ldm<LD>(b0, b1, T, n0, k0, lane);
  } else {
    frag_b<LD>(b0, T, n0, k0, lane);
    frag_b<LD>(b1, T, n0 + 8, k0, lane);
  }
}

// The A fragment of k-chunk kk from accumulators c[n-tile][4] (the C → A identity above).
template <int N>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[N][4], int kk) {
  a[0] = pack2(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack2(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack2(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack2(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// dst[r·LD + c] = bf16(src[r·rs + c]) for r < n, c < d; 0 elsewhere (r < ROWS, c < DMAX).
// Four columns per thread (16-byte loads) where rows start 16-byte aligned and d is a multiple of 4.
template <int ROWS, int DMAX, int LD>
__device__ __forceinline__ void load_tile(bf16* dst, const float* __restrict__ src, long long rs, int n, int d) {
  if ((d & 3) == 0 && (rs & 3) == 0 && (reinterpret_cast<uintptr_t>(src) & 15) == 0) {
    constexpr int QUART = DMAX / 4;
    for (int t = threadIdx.x; t < ROWS * QUART; t += kThreads) {
      const int r = t / QUART, c = 4 * (t - r * QUART);
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < n && c < d) x = __ldg(reinterpret_cast<const float4*>(src + r * rs + c));
      *reinterpret_cast<uint2*>(dst + r * LD + c) = make_uint2(pack2(x.x, x.y), pack2(x.z, x.w));
    }
    return;
  }
  constexpr int HALF = DMAX / 2;
  for (int t = threadIdx.x; t < ROWS * HALF; t += kThreads) {
    const int r = t / HALF, c = 2 * (t - r * HALF);
    float x0 = 0.0f, x1 = 0.0f;
    if (r < n) {
      const float* s = src + r * rs + c;
      if (c < d) x0 = __ldg(s);
      if (c + 1 < d) x1 = __ldg(s + 1);
    }
    *reinterpret_cast<uint32_t*>(dst + r * LD + c) = pack2(x0, x1);
  }
}

// The same from a bf16 source (a bf16 view): the bits as they are, eight columns per thread (16-byte
// loads) where rows start 16-byte aligned and d is a multiple of 8, else two.
template <int ROWS, int DMAX, int LD>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* __restrict__ src, long long rs, int n, int d) {
  if ((d & 7) == 0 && (rs & 7) == 0 && (reinterpret_cast<uintptr_t>(src) & 15) == 0) {
    constexpr int OCT = DMAX / 8;
    for (int t = threadIdx.x; t < ROWS * OCT; t += kThreads) {
      const int r = t / OCT, c = 8 * (t - r * OCT);
      uint4 x = make_uint4(0u, 0u, 0u, 0u);
      if (r < n && c < d) x = __ldg(reinterpret_cast<const uint4*>(src + r * rs + c));
      *reinterpret_cast<uint4*>(dst + r * LD + c) = x;
    }
    return;
  }
  constexpr int HALF = DMAX / 2;
  for (int t = threadIdx.x; t < ROWS * HALF; t += kThreads) {
    const int r = t / HALF, c = 2 * (t - r * HALF);
    uint32_t x0 = 0, x1 = 0;
    if (r < n) {
      const bf16* s = src + r * rs + c;
      if (c < d) x0 = __ldg(s);
      if (c + 1 < d) x1 = __ldg(s + 1);
    }
    *reinterpret_cast<uint32_t*>(dst + r * LD + c) = x0 | (x1 << 16);
  }
}

// Max / sum over the 4 lanes of a quad (one row's fragment), the same value in all of them.
__device__ __forceinline__ float quad_max(float x) {
  x = nan_max(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return nan_max(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- shared memory ---------------------------------------------------------------------------------

template <int DMAX>
struct Smem {
  static constexpr int LD = DMAX + 8;  // [rows][DMAX] tiles
  static constexpr int KLD = KeepLd<kBC>::value;
  static constexpr size_t tile(int rows) { return (size_t)rows * LD * sizeof(bf16); }
  // Q, K, V; key visibility; keep bytes.
  static constexpr size_t forward = tile(kBR) + 2 * tile(kBC) + kBC + kBR * KLD;
  // Q, dO, K, V; lse, Δ; key visibility; keep bytes.
  static constexpr size_t dq = 2 * tile(kBR) + 2 * tile(kBC) + 2 * kBR * sizeof(float) + kBC + kBR * KLD;
  // K, V; Q, dO; lse, Δ; key visibility; keep bytes.
  static constexpr size_t dkdv = 2 * tile(kBC) + 2 * tile(kQB) + 2 * kQB * sizeof(float) + kBC + kQB * KLD;
};

// ---- forward ---------------------------------------------------------------------------------------

// One block per (batch, query head, query tile), heaviest tile first (as the f32 forward).
template <int DMAX, class T, bool LDM>
__global__ void __launch_bounds__(kThreads)
    tc_forward_kernel(const Params p, T* __restrict__ out, float* __restrict__ lse, int ntiles) {
  using S = Smem<DMAX>;
  constexpr int LD = S::LD, NT = kBC / 8, DT = DMAX / 8, KC = DMAX / 16, KLD = S::KLD;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);                  // [kBR][LD]
  bf16* Ks = Qs + kBR * LD;                                   // [kBC][LD]
  bf16* Vs = Ks + kBC * LD;                                   // [kBC][LD]
  uint8_t* kvis = reinterpret_cast<uint8_t*>(Vs + kBC * LD);  // [kBC]
  uint8_t* keep = kvis + kBC;                                   // [kBR][KLD]

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t2 = 2 * (lane & 3);
  const int tile = ntiles - 1 - (int)(blockIdx.x % ntiles);
  const int bh = (int)(blockIdx.x / ntiles), h = bh % p.hq, b = bh / p.hq, kvh = h / p.group;
  const int i0 = tile * kBR, nq = min(kBR, p.tq - i0);
  const int r0 = warp * 16 + (lane >> 2);  // this thread's rows of the tile: r0 and r0 + 8
  int jlo, jhi;
  key_range(p, i0, i0 + nq, jlo, jhi);
  const T* kb = p.kp<T>() + b * p.ks0 + kvh * p.ks2;
  const T* vb = p.vp<T>() + b * p.vs0 + kvh * p.vs2;

  load_tile<kBR, DMAX, LD>(Qs, p.qp<T>() + b * p.qs0 + (long long)i0 * p.qs1 + h * p.qs2, p.qs1, nq, p.d);

  float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f}, o[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;

  for (int j0 = jlo; j0 < jhi; j0 += kBC) {
    const int nk = min(kBC, jhi - j0);
    __syncthreads();  // the previous tile's readers are done
    load_tile<kBC, DMAX, LD>(Ks, kb + (long long)j0 * p.ks1, p.ks1, nk, p.d);
    load_tile<kBC, DMAX, LD>(Vs, vb + (long long)j0 * p.vs1, p.vs1, nk, p.d);
    load_key_vis<kBC, kThreads>(kvis, p, b, j0, nk);
    if (p.drop) fill_keep<kBR, kBC, kThreads>(keep, p, b, h, i0, nq, j0, nk);
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      uint32_t a[4];
      load_a<LDM, LD>(a, Qs, warp * 16, kc * 16, lane);
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t b0[2], b1[2];
        load_b2<LDM, LD>(b0, b1, Ks, nt * 8, kc * 16, lane);
        mma(s[nt], a, b0);
        mma(s[nt + 1], a, b1);
      }
    }

    float mx[2] = {kNegInf, kNegInf};
    const bool full = nk == kBC && tile_visible(p, i0, i0 + nq, j0, j0 + nk);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int half = e >> 1, col = nt * 8 + t2 + (e & 1);
        const bool vis = full || (kvis[col] && position_visible(p, i0 + r0 + 8 * half, j0 + col));
        s[nt][e] = vis ? p.scale * s[nt][e] : kNegInf;
        mx[half] = nan_max(mx[half], s[nt][e]);
      }
    float mnew[2], alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int half = 0; half < 2; half++) {
      mnew[half] = nan_max(m[half], quad_max(mx[half]));
      // mnew = −∞: nothing visible so far; the row stays empty (α = 1, P = 0).
      alpha[half] = mnew[half] == kNegInf ? 1.0f : __expf(m[half] - mnew[half]);
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int half = e >> 1, col = nt * 8 + t2 + (e & 1);
        const float x = mnew[half] == kNegInf ? 0.0f : __expf(s[nt][e] - mnew[half]);
        sum[half] += x;
        s[nt][e] = (p.drop && !keep[(r0 + 8 * half) * KLD + col]) ? 0.0f : x;
      }
#pragma unroll
    for (int half = 0; half < 2; half++) {
      l[half] = l[half] * alpha[half] + quad_sum(sum[half]);
      m[half] = mnew[half];
    }
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }
#pragma unroll
    for (int kk = 0; kk < kBC / 16; kk++) {
      uint32_t a[4];
      acc_to_a<NT>(a, s, kk);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        uint32_t b0[2], b1[2];
        frag_b_trans2<LD>(b0, b1, Vs, dt * 8, kk * 16, lane);
        mma(o[dt], a, b0);
        mma(o[dt + 1], a, b1);
      }
    }
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = r0 + 8 * half;
    if (row >= nq) continue;
    const int i = i0 + row;
    T* orow = out + (((long long)b * p.tq + i) * p.hq + h) * p.d;
    const bool empty = m[half] == kNegInf;
    // 1/(1 − p) joins 1/l, formed in double as the f32 kernel does.
    const float inv = empty ? 0.0f : p.drop ? (float)(p.keep_scale_d / (double)l[half]) : 1.0f / l[half];
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
      const int c = dt * 8 + t2;
      if (c < p.d) cu::st(orow, c, empty ? 0.0f : o[dt][2 * half] * inv);
      if (c + 1 < p.d) cu::st(orow, c + 1, empty ? 0.0f : o[dt][2 * half + 1] * inv);
    }
    if ((lane & 3) == 0)
      lse[((long long)b * p.hq + h) * p.tq + i] = empty ? kNegInf : (float)((double)m[half] + log((double)l[half]));
  }
}

// ---- backward --------------------------------------------------------------------------------------

// dQ of (batch, query head, query tile): loops over the key tiles the tile may see.
template <int DMAX, class T, bool LDM>
__global__ void __launch_bounds__(kThreads)
    tc_dq_kernel(const Params p, const Grad gr, T* __restrict__ dq, int ntiles) {
  using S = Smem<DMAX>;
  constexpr int LD = S::LD, NT = kBC / 8, DT = DMAX / 8, KC = DMAX / 16, KLD = S::KLD;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);                 // [kBR][LD]
  bf16* Gs = Qs + kBR * LD;                                  // [kBR][LD] dO
  bf16* Ks = Gs + kBR * LD;                                  // [kBC][LD]
  bf16* Vs = Ks + kBC * LD;                                  // [kBC][LD]
  float* ls = reinterpret_cast<float*>(Vs + kBC * LD);       // [kBR]
  float* dls = ls + kBR;                                     // [kBR]
  uint8_t* kvis = reinterpret_cast<uint8_t*>(dls + kBR);     // [kBC]
  uint8_t* keep = kvis + kBC;                                // [kBR][KLD]

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t2 = 2 * (lane & 3);
  const int tile = ntiles - 1 - (int)(blockIdx.x % ntiles);
  const int bh = (int)(blockIdx.x / ntiles), h = bh % p.hq, b = bh / p.hq, kvh = h / p.group;
  const int i0 = tile * kBR, nq = min(kBR, p.tq - i0);
  const int r0 = warp * 16 + (lane >> 2);
  int jlo, jhi;
  key_range(p, i0, i0 + nq, jlo, jhi);
  const T* kb = p.kp<T>() + b * p.ks0 + kvh * p.ks2;
  const T* vb = p.vp<T>() + b * p.vs0 + kvh * p.vs2;

  load_tile<kBR, DMAX, LD>(Qs, p.qp<T>() + b * p.qs0 + (long long)i0 * p.qs1 + h * p.qs2, p.qs1, nq, p.d);
  load_tile<kBR, DMAX, LD>(Gs, gr.gp<T>() + b * gr.gs0 + (long long)i0 * gr.gs1 + h * gr.gs2, gr.gs1, nq, p.d);
  const long long base = ((long long)b * p.hq + h) * p.tq + i0;
  for (int r = threadIdx.x; r < kBR; r += kThreads) {
    ls[r] = r < nq ? __ldg(gr.lse + base + r) : kNegInf;
    dls[r] = r < nq ? __ldg(gr.delta + base + r) : 0.0f;
  }

  float acc[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; dt++) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.0f;

  for (int j0 = jlo; j0 < jhi; j0 += kBC) {
    const int nk = min(kBC, jhi - j0);
    __syncthreads();
    load_tile<kBC, DMAX, LD>(Ks, kb + (long long)j0 * p.ks1, p.ks1, nk, p.d);
    load_tile<kBC, DMAX, LD>(Vs, vb + (long long)j0 * p.vs1, p.vs1, nk, p.d);
    load_key_vis<kBC, kThreads>(kvis, p, b, j0, nk);
    if (p.drop) fill_keep<kBR, kBC, kThreads>(keep, p, b, h, i0, nq, j0, nk);
    __syncthreads();

    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      uint32_t aq[4], ag[4];
      load_a<LDM, LD>(aq, Qs, warp * 16, kc * 16, lane);
      load_a<LDM, LD>(ag, Gs, warp * 16, kc * 16, lane);
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        uint32_t bk0[2], bk1[2], bv0[2], bv1[2];
        load_b2<LDM, LD>(bk0, bk1, Ks, nt * 8, kc * 16, lane);
        load_b2<LDM, LD>(bv0, bv1, Vs, nt * 8, kc * 16, lane);
        mma(s[nt], aq, bk0);  // q·k
        mma(s[nt + 1], aq, bk1);
        mma(dp[nt], ag, bv0);  // dO·v
        mma(dp[nt + 1], ag, bv1);
      }
    }
    const bool full = nk == kBC && tile_visible(p, i0, i0 + nq, j0, j0 + nk);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int row = r0 + 8 * (e >> 1), col = nt * 8 + t2 + (e & 1);
        const bool vis = full || (kvis[col] && position_visible(p, i0 + row, j0 + col));
        float pd, ds;
        grad_entry<true>(p, vis, ls[row], dls[row], keep[row * KLD + col] != 0, s[nt][e], dp[nt][e], pd, ds);
        s[nt][e] = ds;
      }
#pragma unroll
    for (int kk = 0; kk < kBC / 16; kk++) {
      uint32_t a[4];
      acc_to_a<NT>(a, s, kk);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        uint32_t b0[2], b1[2];
        frag_b_trans2<LD>(b0, b1, Ks, dt * 8, kk * 16, lane);
        mma(acc[dt], a, b0);  // dQ += dS K
        mma(acc[dt + 1], a, b1);
      }
    }
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = r0 + 8 * half;
    if (row >= nq) continue;
    T* o = dq + (((long long)b * p.tq + i0 + row) * p.hq + h) * p.d;
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
      const int c = dt * 8 + t2;
      if (c < p.d) cu::st(o, c, acc[dt][2 * half]);
      if (c + 1 < p.d) cu::st(o, c + 1, acc[dt][2 * half + 1]);
    }
  }
}

// dK, dV of (batch, kv head, key tile): loops over the group's query heads and the query tiles that may
// see the key tile; K and V stay in shared memory, dK and dV in registers. Deterministic: each output is
// one thread's, its sum in a fixed order.
template <int DMAX, class T, bool LDM>
__global__ void __launch_bounds__(kThreads, 1)
    tc_dkdv_kernel(const Params p, const Grad gr, T* __restrict__ dk, T* __restrict__ dv, int ntiles) {
  using S = Smem<DMAX>;
  constexpr int LD = S::LD, NT = kQB / 8, DT = DMAX / 8, KC = DMAX / 16, KLD = S::KLD;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);                  // [kBC][LD]
  bf16* Vs = Ks + kBC * LD;                                   // [kBC][LD]
  bf16* Qs = Vs + kBC * LD;                                   // [kQB][LD]
  bf16* Gs = Qs + kQB * LD;                                   // [kQB][LD] dO
  float* ls = reinterpret_cast<float*>(Gs + kQB * LD);        // [kQB]
  float* dls = ls + kQB;                                      // [kQB]
  uint8_t* kvis = reinterpret_cast<uint8_t*>(dls + kQB);      // [kBC]
  uint8_t* keep = kvis + kBC;                                 // [kQB][KLD] (query-major, as the forward's)

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t2 = 2 * (lane & 3);
  const int tile = (int)(blockIdx.x % ntiles);  // first key tiles see the most queries under a causal mask
  const int bg = (int)(blockIdx.x / ntiles), kvh = bg % p.hkv, b = bg / p.hkv;
  const int j0 = tile * kBC, nk = min(kBC, p.tk - j0);
  const int k0 = warp * 16 + (lane >> 2);  // this thread's keys of the tile: k0 and k0 + 8
  int ilo, ihi;
  query_range(p, j0, j0 + nk, ilo, ihi);

  load_tile<kBC, DMAX, LD>(Ks, p.kp<T>() + b * p.ks0 + (long long)j0 * p.ks1 + kvh * p.ks2, p.ks1, nk, p.d);
  load_tile<kBC, DMAX, LD>(Vs, p.vp<T>() + b * p.vs0 + (long long)j0 * p.vs1 + kvh * p.vs2, p.vs1, nk, p.d);
  load_key_vis<kBC, kThreads>(kvis, p, b, j0, nk);

  float adk[DT][4], adv[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; dt++)
#pragma unroll
    for (int e = 0; e < 4; e++) adk[dt][e] = adv[dt][e] = 0.0f;

  for (int h = kvh * p.group; h < (kvh + 1) * p.group; h++) {
    for (int i0 = ilo; i0 < ihi; i0 += kQB) {
      const int nq = min(kQB, ihi - i0);
      __syncthreads();  // the previous tile's readers are done
      const T* qrow = p.qp<T>() + b * p.qs0 + (long long)i0 * p.qs1 + h * p.qs2;
      const T* grow = gr.gp<T>() + b * gr.gs0 + (long long)i0 * gr.gs1 + h * gr.gs2;
      load_tile<kQB, DMAX, LD>(Qs, qrow, p.qs1, nq, p.d);
      load_tile<kQB, DMAX, LD>(Gs, grow, gr.gs1, nq, p.d);
      const long long base = ((long long)b * p.hq + h) * p.tq + i0;
      for (int r = threadIdx.x; r < kQB; r += kThreads) {
        ls[r] = r < nq ? __ldg(gr.lse + base + r) : kNegInf;
        dls[r] = r < nq ? __ldg(gr.delta + base + r) : 0.0f;
      }
      if (p.drop) fill_keep<kQB, kBC, kThreads>(keep, p, b, h, i0, nq, j0, nk);
      __syncthreads();

      float st[NT][4], dpt[NT][4];  // Sᵀ and (dO Vᵀ)ᵀ: rows keys, columns queries
#pragma unroll
      for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[nt][e] = dpt[nt][e] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < KC; kc++) {
        uint32_t ak[4], av[4];
        load_a<LDM, LD>(ak, Ks, warp * 16, kc * 16, lane);
        load_a<LDM, LD>(av, Vs, warp * 16, kc * 16, lane);
#pragma unroll
        for (int nt = 0; nt < NT; nt += 2) {
          uint32_t bq0[2], bq1[2], bg0[2], bg1[2];
          load_b2<LDM, LD>(bq0, bq1, Qs, nt * 8, kc * 16, lane);
          load_b2<LDM, LD>(bg0, bg1, Gs, nt * 8, kc * 16, lane);
          mma(st[nt], ak, bq0);
          mma(st[nt + 1], ak, bq1);
          mma(dpt[nt], av, bg0);
          mma(dpt[nt + 1], av, bg1);
        }
      }
      const bool full = nk == kBC && tile_visible(p, i0, i0 + nq, j0, j0 + nk);
#pragma unroll
      for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = k0 + 8 * (e >> 1), qr = nt * 8 + t2 + (e & 1);
          const bool vis = full || (kvis[key] && position_visible(p, i0 + qr, j0 + key));
          float pd, ds;
          grad_entry<true>(p, vis, ls[qr], dls[qr], keep[qr * KLD + key] != 0, st[nt][e], dpt[nt][e], pd, ds);
          st[nt][e] = pd;
          dpt[nt][e] = ds;
        }
#pragma unroll
      for (int kk = 0; kk < kQB / 16; kk++) {
        uint32_t ap[4], as[4];
        acc_to_a<NT>(ap, st, kk);
        acc_to_a<NT>(as, dpt, kk);
#pragma unroll
        for (int dt = 0; dt < DT; dt += 2) {
          uint32_t g0[2], g1[2], q0[2], q1[2];
          frag_b_trans2<LD>(g0, g1, Gs, dt * 8, kk * 16, lane);
          frag_b_trans2<LD>(q0, q1, Qs, dt * 8, kk * 16, lane);
          mma(adv[dt], ap, g0);  // dV += (P ∘ M)ᵀ dO
          mma(adv[dt + 1], ap, g1);
          mma(adk[dt], as, q0);  // dK += dSᵀ Q
          mma(adk[dt + 1], as, q1);
        }
      }
    }
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int key = k0 + 8 * half;
    if (key >= nk) continue;
    const long long row = (((long long)b * p.tk + j0 + key) * p.hkv + kvh) * p.d;
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
      const int c = dt * 8 + t2;
      if (c < p.d) {
        cu::st(dk, row + c, adk[dt][2 * half]);
        cu::st(dv, row + c, adv[dt][2 * half]);
      }
      if (c + 1 < p.d) {
        cu::st(dk, row + c + 1, adk[dt][2 * half + 1]);
        cu::st(dv, row + c + 1, adv[dt][2 * half + 1]);
      }
    }
  }
}

// ---- host ------------------------------------------------------------------------------------------

// mma.sync on bf16 needs sm_80 or later.
bool tensor_cores() {
  static const bool ok = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    return major >= 8;
  }();
  return ok;
}

// Calls f(std::integral_constant<int, DMAX>) with the smallest DMAX ∈ {32, 64, 128} ≥ d; false past 128.
template <class F>
bool with_tc_head(int d, F&& f) {
  if (d <= 32) f(std::integral_constant<int, 32>{});
  else if (d <= 64) f(std::integral_constant<int, 64>{});
  else if (d <= 128) f(std::integral_constant<int, 128>{});
  else return false;
  return true;
}

// VERA_CUDA_ATTN_LDMATRIX=1: fragments through ldmatrix (load_a, load_b2), experimental.
bool use_ldmatrix() {
  static const bool on = [] {
    const char* e = std::getenv("VERA_CUDA_ATTN_LDMATRIX");
    return e && std::strcmp(e, "1") == 0;
  }();
  return on;
}

// Calls f(std::integral_constant<bool, LDM>) with the fragment form in use.
template <class F>
void with_ldm(F&& f) {
  if (use_ldmatrix()) f(std::true_type{});
  else f(std::false_type{});
}

}  // namespace

bool tc_forward(const Params& p, void* out, bool bf16v, float* lse, int64_t b, const char* kn) {
  if (!tensor_cores()) return false;
  return with_tc_head(p.d, [&](auto dm) {
    constexpr int DMAX = decltype(dm)::value;
    cu::with_float(bf16v ? DType::BF16 : DType::F32, [&](auto t) {
     with_ldm([&](auto ldm) {
      using T = decltype(t);
      constexpr bool LDM = decltype(ldm)::value;
      constexpr size_t smem = Smem<DMAX>::forward;
      auto kernel = tc_forward_kernel<DMAX, T, LDM>;
      static const bool ready = (allow_smem(kernel, smem, kn), true);
      (void)ready;
      const int64_t ntiles = (p.tq + kBR - 1) / kBR;
      kernel<<<grid_of(kn, b * p.hq * ntiles), kThreads, smem, cu::stream()>>>(p, static_cast<T*>(out), lse, (int)ntiles);
      cu::launched(kn);
     });
    });
  });
}

bool tc_backward(const Params& p, const Grad& gr, void* dq, void* dk, void* dv, bool bf16v, int64_t b, const char* kn) {
  if (!tensor_cores()) return false;
  return with_tc_head(p.d, [&](auto dm) {
    constexpr int DMAX = decltype(dm)::value;
    cu::with_float(bf16v ? DType::BF16 : DType::F32, [&](auto t) {
     with_ldm([&](auto ldm) {
      using T = decltype(t);
      constexpr bool LDM = decltype(ldm)::value;
      constexpr size_t kv_smem = Smem<DMAX>::dkdv, q_smem = Smem<DMAX>::dq;
      auto kv_kernel = tc_dkdv_kernel<DMAX, T, LDM>;
      auto q_kernel = tc_dq_kernel<DMAX, T, LDM>;
      static const bool ready = (allow_smem(kv_kernel, kv_smem, kn), allow_smem(q_kernel, q_smem, kn), true);
      (void)ready;
      const int64_t kv_tiles = (p.tk + kBC - 1) / kBC;
      if (b * p.hkv * kv_tiles > 0) {
        kv_kernel<<<grid_of(kn, b * p.hkv * kv_tiles), kThreads, kv_smem, cu::stream()>>>(p, gr, static_cast<T*>(dk),
                                                                                           static_cast<T*>(dv), (int)kv_tiles);
        cu::launched(kn);
      }
      const int64_t q_tiles = (p.tq + kBR - 1) / kBR;
      if (b * p.hq * q_tiles > 0) {
        q_kernel<<<grid_of(kn, b * p.hq * q_tiles), kThreads, q_smem, cu::stream()>>>(p, gr, static_cast<T*>(dq), (int)q_tiles);
        cu::launched(kn);
      }
     });
    });
  });
}

}  // namespace attn
}  // namespace vera
