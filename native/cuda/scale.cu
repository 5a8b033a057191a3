// Per-feature scalings folded into a weight and their gradients (VeRA's λ_b and λ_d folded into B):
//   scaleFold:  out[o, k] = (w[o, k] · r[o]) · c[k]
//   scaleGrads: rowGrad[o] = Σ_k (g·w)[o, k] · c[k],  colGrad[k] = Σ_o (g·w)[o, k] · r[o]
//   scaleAdd:   out[i, k] = a[i, k] + v[i, k] · s[k]  (a scaled adapter output onto the base's)
//   scaleBackward: dv[i, k] = dy[i, k] · s[k], ds[k] = Σ_i dy[i, k] · v[i, k]  (v ⊙ s's gradients)
// w, out and g are contiguous [O, K] (f32 or bf16 each); the scales and gradients are f32 vectors,
// either scale absent (ones). Values are formed as the composite (src/ops/composite/scale.ts) forms
// them (each product an f32 multiply: the exact product rounded once, as an f32 temporary holds it), so
// scaleFold gives its bits. The
// gradients are one read of g and w: a block of 8 warps takes kRows rows and a tile of up to kTile
// columns; each warp sums its rows' terms with shuffles (the row partial of this tile) and keeps its
// column sums in its own shared-memory row; the block adds its 8 rows in order (the column partial of
// this chunk of rows). A second kernel adds the partials in order: deterministic, no atomics.
#include "bf16.cuh"
#include "kernels.h"

namespace vera {

namespace {

constexpr int kWarps = 8;
constexpr int kRows = 16;    // rows per block (2 per warp)
constexpr int kTile = 1024;  // columns per block: kWarps · kTile floats of shared memory (32 KB)
constexpr int kUnroll = 4;

struct Mat {
  const void* p;
  bool bf16;
};

__device__ __forceinline__ float ldm(const Mat& m, int64_t i) {
  return m.bf16 ? cu::bf16_bits_to_f32(static_cast<const uint16_t*>(m.p)[i]) : static_cast<const float*>(m.p)[i];
}

// Rows over blockIdx.y (grid-stride), columns over the threads of a block: no index division. Each
// product is an f32 multiply, which rounds the exact product once, as the composite's f32 results do.
__global__ void __launch_bounds__(cu::kThreads)
    fold_kernel(void* out, bool out_bf16, Mat w, const float* r, const float* c, int64_t rows, int64_t cols) {
  for (int64_t o = blockIdx.y; o < rows; o += gridDim.y) {
    const float ro = r ? r[o] : 1.f;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < cols; k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t i = o * cols + k;
      float v = ldm(w, i);
      if (r) v *= ro;
      if (c) v *= c[k];
      if (out_bf16) static_cast<uint16_t*>(out)[i] = cu::f32_to_bf16_bits(v);
      else static_cast<float*>(out)[i] = v;
    }
  }
}

// The VeRA case, an f32 master folded into a bf16 weight with both scales, eight columns a thread
// (two 16-byte loads of w and of c, one 16-byte store): the scalar kernel above leaves the copy
// latency-bound at one 4-byte load in flight per thread. cols % 8 == 0, every pointer 16-byte aligned.
__global__ void __launch_bounds__(cu::kThreads) fold_vec8_kernel(cu::bf16_t* out, const float* w, const float* r,
                                                                 const float* c, int64_t rows, int64_t cols) {
  const int64_t per_row = cols / 8, n8 = rows * per_row;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < n8; q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = q / per_row, k = 8 * (q - o * per_row);
    const float4* wp = reinterpret_cast<const float4*>(w + o * cols + k);
    const float4* cp = reinterpret_cast<const float4*>(c + k);
    const float4 w0 = wp[0], w1 = wp[1], c0 = cp[0], c1 = cp[1];
    const float ro = r[o];
    const float v[8] = {w0.x * ro * c0.x, w0.y * ro * c0.y, w0.z * ro * c0.z, w0.w * ro * c0.w,
                        w1.x * ro * c1.x, w1.y * ro * c1.y, w1.z * ro * c1.z, w1.w * ro * c1.w};
    cu::st8(out + o * cols + k, v);
  }
}

// Partials: row_part [tiles, rows] (row sums over this tile's columns), col_part [chunks, cols].
// VEC (g and w f32, cols % 4 == 0, 16-byte aligned): a lane takes four consecutive columns per access.
template <bool VEC>
__global__ void __launch_bounds__(kWarps * 32)
    grads_kernel(Mat g, Mat w, const float* r, const float* c, float* row_part, float* col_part, int64_t rows,
                 int64_t cols, bool want_rows, bool want_cols) {
  __shared__ float acc[kWarps][kTile];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t k0 = (int64_t)blockIdx.x * kTile;
  const int tile = (int)min((int64_t)kTile, cols - k0);
  const int64_t o0 = (int64_t)blockIdx.y * kRows;
  for (int j = lane; j < tile; j += 32) acc[warp][j] = 0.f;
  for (int64_t o = o0 + warp; o < o0 + kRows && o < rows; o += kWarps) {
    const float ro = r ? r[o] : 1.f;
    float row = 0.f;
    if (VEC) {
      const float* gr = static_cast<const float*>(g.p) + o * cols + k0;
      const float* wr = static_cast<const float*>(w.p) + o * cols + k0;
      for (int j = 4 * lane; j < tile; j += 128) {
        const float4 gv = *reinterpret_cast<const float4*>(gr + j), wv = *reinterpret_cast<const float4*>(wr + j);
        const float p[4] = {gv.x * wv.x, gv.y * wv.y, gv.z * wv.z, gv.w * wv.w};
#pragma unroll
        for (int u = 0; u < 4; u++) {
          row += c ? p[u] * c[k0 + j + u] : p[u];
          acc[warp][j + u] += r ? p[u] * ro : p[u];
        }
      }
    } else {
      // Four columns a lane at a time, loaded before use (several loads in flight per lane).
      for (int j0 = lane; j0 < tile; j0 += 32 * kUnroll) {
        float gv[kUnroll], wv[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
          const int j = j0 + 32 * u;
          const int64_t i = o * cols + k0 + j;
          gv[u] = j < tile ? ldm(g, i) : 0.f;
          wv[u] = j < tile ? ldm(w, i) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
          const int j = j0 + 32 * u;
          if (j >= tile) break;
          const float p = gv[u] * wv[u];
          row += c ? p * c[k0 + j] : p;
          acc[warp][j] += r ? p * ro : p;
        }
      }
    }
    if (want_rows) {
#pragma unroll
      for (int s = 16; s > 0; s /= 2) row += __shfl_xor_sync(0xffffffffu, row, s);
      if (lane == 0) row_part[(int64_t)blockIdx.x * rows + o] = row;
    }
  }
  if (!want_cols) return;
  __syncthreads();
  for (int j = threadIdx.x; j < tile; j += blockDim.x) {
    float s = 0.f;
#pragma unroll
    for (int q = 0; q < kWarps; q++) s += acc[q][j];
    col_part[(int64_t)blockIdx.y * cols + k0 + j] = s;
  }
}

// out[i] = Σ_p part[p, i]: a block of 32 × 32 threads takes 32 consecutive i (coalesced reads), its
// 32 rows of threads each sum every 32nd p in order, and row 0 adds their 32 sums in order.
__global__ void __launch_bounds__(1024) sum_parts_kernel(float* out, const float* part, int64_t parts, int64_t n) {
  __shared__ float s[32][33];
  const int64_t i = (int64_t)blockIdx.x * 32 + threadIdx.x;
  float v = 0.f;
  if (i < n)
    for (int64_t p = threadIdx.y; p < parts; p += 32) v += part[p * n + i];
  s[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y != 0 || i >= n) return;
  float t = 0.f;
  for (int q = 0; q < 32; q++) t += s[q][threadIdx.x];
  out[i] = t;
}

void sum_parts(float* out, const float* part, int64_t parts, int64_t n) {
  sum_parts_kernel<<<(unsigned)((n + 31) / 32), dim3(32, 32), 0, cu::stream()>>>(out, part, parts, n);
}

// out = a + v ⊙ s (s per column): rows over blockIdx.y, columns over threads; the product rounded
// before the add (__fmul_rn: no contraction into an FMA), as the composite's f32 temporary holds it.
__global__ void __launch_bounds__(cu::kThreads)
    scale_add_kernel(void* out, bool out_bf16, Mat a, Mat v, const float* s, int64_t rows, int64_t cols) {
  for (int64_t o = blockIdx.y; o < rows; o += gridDim.y)
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < cols; k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t i = o * cols + k;
      const float y = __fadd_rn(ldm(a, i), __fmul_rn(ldm(v, i), s[k]));
      if (out_bf16) static_cast<uint16_t*>(out)[i] = cu::f32_to_bf16_bits(y);
      else static_cast<float*>(out)[i] = y;
    }
}

// dv = dy ⊙ s (s per column), each product an f32 multiply rounded to dv's dtype.
__global__ void __launch_bounds__(cu::kThreads)
    scale_rows_kernel(void* out, bool out_bf16, Mat dy, const float* s, int64_t rows, int64_t cols) {
  for (int64_t o = blockIdx.y; o < rows; o += gridDim.y)
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < cols; k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t i = o * cols + k;
      const float y = __fmul_rn(ldm(dy, i), s[k]);
      if (out_bf16) static_cast<uint16_t*>(out)[i] = cu::f32_to_bf16_bits(y);
      else static_cast<float*>(out)[i] = y;
    }
}

Mat mat_of(const char* k, const char* what, const View& v) {
  need_float_contig(k, what, v);
  if (v.ndim != 2) fail(k, "%s must be a matrix [O, K], got shape %s", what, v.shape_str().c_str());
  return Mat{static_cast<const char*>(v.base) + v.offset * dtype_bytes(v.dtype), v.dtype == DType::BF16};
}

const float* vec_of(const char* k, const char* what, const View& v, int64_t n) {
  if (!v.present) return nullptr;
  need_f32_contig(k, what, v);
  if (v.numel() != n) fail(k, "%s has %lld elements, expected %lld", what, (long long)v.numel(), (long long)n);
  return v.f();
}

}  // namespace

void scale_fold(const View& out, const View& w, const View& row_scale, const View& col_scale) {
  const char* k = "scaleFold";
  const Mat wm = mat_of(k, "w", w);
  mat_of(k, "output", out);
  need_same_shape(k, "output", out, w);
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const float* r = vec_of(k, "rowScale", row_scale, rows);
  const float* c = vec_of(k, "colScale", col_scale, cols);
  if (rows * cols == 0) return;
  void* o = static_cast<char*>(out.base) + out.offset * dtype_bytes(out.dtype);
  if (r && c && !wm.bf16 && out.dtype == DType::BF16 && cols % 8 == 0 && cu::aligned16(o) && cu::aligned16(wm.p) &&
      cu::aligned16(c)) {
    fold_vec8_kernel<<<cu::grid_for(rows * cols / 8), cu::kThreads, 0, cu::stream()>>>(
        static_cast<cu::bf16_t*>(o), static_cast<const float*>(wm.p), r, c, rows, cols);
    cu::launched(k);
    return;
  }
  // Enough blocks to fill the device, each walking many rows: one row per block made tens of thousands
  // of tiny blocks, and their scheduling cost more than the copy.
  const int64_t gx = std::min<int64_t>((cols + cu::kThreads - 1) / cu::kThreads, 64);
  const int64_t gy = std::min<int64_t>(rows, std::max<int64_t>(1, (int64_t)cu::sm_count() * 16 / gx));
  const dim3 grid((unsigned)gx, (unsigned)std::min<int64_t>(gy, 65535));
  fold_kernel<<<grid, cu::kThreads, 0, cu::stream()>>>(o, out.dtype == DType::BF16, wm, r, c, rows, cols);
  cu::launched(k);
}

void scale_grads(const View& row_grad, const View& col_grad, const View& g, const View& w, const View& row_scale,
                 const View& col_scale) {
  const char* k = "scaleGrads";
  const Mat gm = mat_of(k, "g", g), wm = mat_of(k, "w", w);
  need_same_shape(k, "g", g, w);
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const float* r = vec_of(k, "rowScale", row_scale, rows);
  const float* c = vec_of(k, "colScale", col_scale, cols);
  float* rg = const_cast<float*>(vec_of(k, "rowGrad", row_grad, rows));
  float* cg = const_cast<float*>(vec_of(k, "colGrad", col_grad, cols));
  if (!rg && !cg) return;
  if (rows == 0 || cols == 0) {
    if (rg) cu::check(cudaMemsetAsync(rg, 0, rows * sizeof(float), cu::stream()), k, "zero the row gradient");
    if (cg) cu::check(cudaMemsetAsync(cg, 0, cols * sizeof(float), cu::stream()), k, "zero the column gradient");
    return;
  }
  const int64_t tiles = (cols + kTile - 1) / kTile, chunks = (rows + kRows - 1) / kRows;
  if (chunks > 65535) fail(k, "%lld rows is more than this kernel's grid takes (%lld)", (long long)rows, 65535LL * kRows);
  float* row_part = rg ? static_cast<float*>(cu::scratch(tiles * rows * sizeof(float), 0)) : nullptr;
  float* col_part = cg ? static_cast<float*>(cu::scratch(chunks * cols * sizeof(float), 1)) : nullptr;
  const dim3 grid((unsigned)tiles, (unsigned)chunks);
  const bool vec = !gm.bf16 && !wm.bf16 && cols % 4 == 0 && cu::aligned16(gm.p) && cu::aligned16(wm.p);
  if (vec)
    grads_kernel<true><<<grid, kWarps * 32, 0, cu::stream()>>>(gm, wm, r, c, row_part, col_part, rows, cols, rg != nullptr,
                                                             cg != nullptr);
  else
    grads_kernel<false><<<grid, kWarps * 32, 0, cu::stream()>>>(gm, wm, r, c, row_part, col_part, rows, cols,
                                                              rg != nullptr, cg != nullptr);
  cu::launched(k);
  if (rg) sum_parts(rg, row_part, tiles, rows);
  if (cg) sum_parts(cg, col_part, chunks, cols);
  cu::launched(k);
}

void scale_add(const View& out, const View& a, const View& v, const View& s) {
  const char* k = "scaleAdd";
  const Mat vm = mat_of(k, "v", v), am = mat_of(k, "a", a);
  mat_of(k, "output", out);
  need_same_shape(k, "a", a, v);
  need_same_shape(k, "output", out, v);
  const int64_t rows = v.shape[0], cols = v.shape[1];
  if (!s.present) fail(k, "s is required");
  const float* sp = vec_of(k, "s", s, cols);
  if (rows * cols == 0) return;
  void* o = static_cast<char*>(out.base) + out.offset * dtype_bytes(out.dtype);
  const int64_t gx = std::min<int64_t>((cols + cu::kThreads - 1) / cu::kThreads, 64);
  const int64_t gy = std::min<int64_t>(rows, std::max<int64_t>(1, (int64_t)cu::sm_count() * 16 / gx));
  scale_add_kernel<<<dim3((unsigned)gx, (unsigned)std::min<int64_t>(gy, 65535)), cu::kThreads, 0, cu::stream()>>>(
      o, out.dtype == DType::BF16, am, vm, sp, rows, cols);
  cu::launched(k);
}

// Two passes here (dv, then ds through scale_grads' column sums): the CPU's one-pass form saves memory
// traffic that the GPU's VeRA path (λ_b folded into B, src/ops/scaled-linear.ts) does not spend.
void scale_backward(const View& dv, const View& ds, const View& dy, const View& v, const View& s) {
  const char* k = "scaleBackward";
  const Mat gm = mat_of(k, "dy", dy);
  mat_of(k, "v", v);
  need_same_shape(k, "v", v, dy);
  const int64_t rows = dy.shape[0], cols = dy.shape[1];
  if (!s.present) fail(k, "s is required");
  const float* sp = vec_of(k, "s", s, cols);
  if (ds.present) scale_grads(View{}, ds, dy, v, View{}, View{});
  if (!dv.present) return;
  mat_of(k, "dv", dv);
  need_same_shape(k, "dv", dv, dy);
  if (rows * cols == 0) return;
  void* o = static_cast<char*>(dv.base) + dv.offset * dtype_bytes(dv.dtype);
  const int64_t gx = std::min<int64_t>((cols + cu::kThreads - 1) / cu::kThreads, 64);
  const int64_t gy = std::min<int64_t>(rows, std::max<int64_t>(1, (int64_t)cu::sm_count() * 16 / gx));
  scale_rows_kernel<<<dim3((unsigned)gx, (unsigned)std::min<int64_t>(gy, 65535)), cu::kThreads, 0, cu::stream()>>>(
      o, dv.dtype == DType::BF16, gm, sp, rows, cols);
  cu::launched(k);
}

}  // namespace vera
