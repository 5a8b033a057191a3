// LayerNorm and RMSNorm over the last axis of contiguous [R, C] views, forward and backward: the CUDA
// twin of native/src/norm.cc. Row kernels take one warp per row for rows up to kWarpRowMax long
// (8 rows per block), else one block per row; row statistics accumulate in double as on the CPU, in a
// fixed order. The weight/bias gradients accumulate (+=) into dw/db without atomics: a column kernel
// sums each chunk of rows (16 or more, at most 256 chunks) per column into double partials
// (cu::scratch), and a second kernel adds the partials, in chunk order, to dw/db. The chunking depends
// on the shape only, so results are bit-identical run to run (and across devices). x, out, dy and dx
// may be f32 or bf16 each (bf16 activations; w, b, dw, db, mean and rstd stay f32): bf16 elements are
// widened exactly, the arithmetic is the f32 kernels', and a bf16 out or dx is its f32 value rounded once.
#include <algorithm>
#include <climits>

#include "bf16.cuh"
#include "device.cuh"
#include "kernels.h"
#include "rows.cuh"

namespace vera {

namespace {

// ---- forward ------------------------------------------------------------------------------------

template <bool kBlock, class TO, class TX>
__global__ void __launch_bounds__(1024)
    layernorm_kernel(TO* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                     const TX* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, int64_t r,
                     int64_t c, double eps) {
  using G = Row<kBlock>;
  using cu::ld;
  using cu::st;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;
  const TX* xr = x + i * c;
  TO* orow = out + i * c;
  const int lane = G::lane(), step = G::size();
  double s = 0;
  for (int64_t j = lane; j < c; j += step) s += (double)ld(xr, j);
  const double m = G::reduce(s, SumOp()) / (double)c;
  double v = 0;
  for (int64_t j = lane; j < c; j += step) {
    const double t = (double)ld(xr, j) - m;
    v += t * t;
  }
  v = G::reduce(v, SumOp()) / (double)c;
  const double rs = 1.0 / ::sqrt(v + eps);
  if (lane == 0) {
    mean[i] = (float)m;
    rstd[i] = (float)rs;
  }
  const float mf = (float)m, rf = (float)rs;
  if (w && b) {
    for (int64_t j = lane; j < c; j += step) st(orow, j, (ld(xr, j) - mf) * rf * w[j] + b[j]);
  } else if (w) {
    for (int64_t j = lane; j < c; j += step) st(orow, j, (ld(xr, j) - mf) * rf * w[j]);
  } else if (b) {
    for (int64_t j = lane; j < c; j += step) st(orow, j, (ld(xr, j) - mf) * rf + b[j]);
  } else {
    for (int64_t j = lane; j < c; j += step) st(orow, j, (ld(xr, j) - mf) * rf);
  }
}

template <bool kBlock, class TO, class TX>
__global__ void __launch_bounds__(1024) rmsnorm_kernel(TO* __restrict__ out, float* __restrict__ rstd,
                                                       const TX* __restrict__ x, const float* __restrict__ w,
                                                       int64_t r, int64_t c, double eps) {
  using G = Row<kBlock>;
  using cu::ld;
  using cu::st;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;
  const TX* xr = x + i * c;
  TO* orow = out + i * c;
  const int lane = G::lane(), step = G::size();
  double ss = 0;
  for (int64_t j = lane; j < c; j += step) ss += (double)ld(xr, j) * (double)ld(xr, j);
  ss = G::reduce(ss, SumOp());
  const double rs = 1.0 / ::sqrt(ss / (double)c + eps);
  if (lane == 0) rstd[i] = (float)rs;
  const float rf = (float)rs;
  if (w) {
    for (int64_t j = lane; j < c; j += step) st(orow, j, ld(xr, j) * rf * w[j]);
  } else {
    for (int64_t j = lane; j < c; j += step) st(orow, j, ld(xr, j) * rf);
  }
}

// ---- backward: dx per row -----------------------------------------------------------------------

template <bool kBlock, class TO, class TD, class TX>
__global__ void __launch_bounds__(1024)
    layernorm_dx_kernel(TO* __restrict__ dx, const TD* __restrict__ dy, const TX* __restrict__ x,
                        const float* __restrict__ w, const float* __restrict__ mean, const float* __restrict__ rstd,
                        int64_t r, int64_t c) {
  using G = Row<kBlock>;
  using cu::ld;
  using cu::st;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;
  const TX* xr = x + i * c;
  const TD* gr = dy + i * c;
  TO* dr = dx + i * c;
  const int lane = G::lane(), step = G::size();
  const float m = mean[i], s = rstd[i];
  double sg = 0, sgx = 0;
  for (int64_t j = lane; j < c; j += step) {
    const float xhat = (ld(xr, j) - m) * s;
    const float g = w ? ld(gr, j) * w[j] : ld(gr, j);
    sg += (double)g;
    sgx += (double)g * (double)xhat;
  }
  sg = G::reduce(sg, SumOp());
  sgx = G::reduce(sgx, SumOp());
  const float mg = (float)(sg / (double)c), mgx = (float)(sgx / (double)c);
  for (int64_t j = lane; j < c; j += step) {
    const float xhat = (ld(xr, j) - m) * s;
    const float g = w ? ld(gr, j) * w[j] : ld(gr, j);
    st(dr, j, s * (g - mg - xhat * mgx));
  }
}

template <bool kBlock, class TO, class TD, class TX>
__global__ void __launch_bounds__(1024)
    rmsnorm_dx_kernel(TO* __restrict__ dx, const TD* __restrict__ dy, const TX* __restrict__ x,
                      const float* __restrict__ w, const float* __restrict__ rstd, int64_t r, int64_t c) {
  using G = Row<kBlock>;
  using cu::ld;
  using cu::st;
  const int64_t i = G::index();
  if (!kBlock && i >= r) return;
  const TX* xr = x + i * c;
  const TD* gr = dy + i * c;
  TO* dr = dx + i * c;
  const int lane = G::lane(), step = G::size();
  const float s = rstd[i];
  double sgx = 0;
  for (int64_t j = lane; j < c; j += step) {
    const float g = w ? ld(gr, j) * w[j] : ld(gr, j);
    sgx += (double)g * (double)(ld(xr, j) * s);
  }
  const float mgx = (float)(G::reduce(sgx, SumOp()) / (double)c);
  for (int64_t j = lane; j < c; j += step) {
    const float g = w ? ld(gr, j) * w[j] : ld(gr, j);
    st(dr, j, s * (g - (ld(xr, j) * s) * mgx));
  }
}

// ---- backward: dw / db, deterministic column sums -----------------------------------------------
// Block (32, 8) = 32 columns × 8 row lanes over one chunk of rows; thread (tx, ty) sums rows
// lo + ty, lo + ty + 8, ... of column j, then the 8 lanes are added in order into
// pw/pb[chunk · c + j]. The products are f32 as on the CPU; the sums are double (the CPU sums f32
// per-thread partial rows; double keeps the result close to any summation order, the js backend's
// row-by-row f32 += included).
constexpr int kColTile = 32, kRowLanes = 8;

template <bool kRms, class TD, class TX>
__global__ void __launch_bounds__(kColTile* kRowLanes)
    norm_param_partials(double* __restrict__ pw, double* __restrict__ pb, const TD* __restrict__ dy,
                        const TX* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ rstd,
                        int64_t r, int64_t c, int64_t chunk_rows) {
  __shared__ double sw[kRowLanes][kColTile], sb[kRowLanes][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = (int64_t)blockIdx.x * kColTile + tx;
  const int64_t p = blockIdx.y;
  const int64_t lo = p * chunk_rows, hi = lo + chunk_rows < r ? lo + chunk_rows : r;
  double aw = 0, ab = 0;
  if (j < c) {
    for (int64_t i = lo + ty; i < hi; i += kRowLanes) {
      const float g = cu::ld(dy, i * c + j);
      const float xv = cu::ld(x, i * c + j);
      const float xhat = kRms ? xv * rstd[i] : (xv - mean[i]) * rstd[i];
      aw += (double)(g * xhat);
      if (!kRms) ab += (double)g;
    }
  }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && j < c) {
    double tw = sw[0][tx], tb = sb[0][tx];
    for (int t = 1; t < kRowLanes; t++) {
      tw += sw[t][tx];
      tb += sb[t][tx];
    }
    if (pw) pw[p * c + j] = tw;
    if (pb) pb[p * c + j] = tb;
  }
}

// dst[j] += Σ_p part[p · c + j], p in order, rounded to f32 once.
__global__ void add_partials_kernel(float* __restrict__ dw, const double* __restrict__ pw, float* __restrict__ db,
                                    const double* __restrict__ pb, int64_t chunks, int64_t c) {
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < c; j += (int64_t)gridDim.x * blockDim.x) {
    if (dw) {
      double s = 0;
      for (int64_t p = 0; p < chunks; p++) s += pw[p * c + j];
      dw[j] = (float)((double)dw[j] + s);
    }
    if (db) {
      double s = 0;
      for (int64_t p = 0; p < chunks; p++) s += pb[p * c + j];
      db[j] = (float)((double)db[j] + s);
    }
  }
}

// dw (and db unless kRms) += column sums of dy·xhat (and dy) over r rows of c.
template <bool kRms, class TD, class TX>
void param_grads(const char* k, float* dw, float* db, const TD* dy, const TX* x, const float* mean,
                 const float* rstd, int64_t r, int64_t c) {
  if (!dw && !db) return;
  // Chunks of at least 16 rows, at most 256 chunks: enough blocks to fill the device for training
  // shapes, partials small next to the inputs. Depends on r only.
  const int64_t chunk_rows = std::max<int64_t>(16, (r + 255) / 256);
  const int64_t chunks = (r + chunk_rows - 1) / chunk_rows;
  const int64_t tiles = (c + kColTile - 1) / kColTile;
  if (tiles > INT_MAX) fail(k, "too many columns (%lld)", (long long)c);
  const size_t part = (size_t)chunks * (size_t)c;
  double* scratch = static_cast<double*>(cu::scratch(part * sizeof(double) * ((dw && db) ? 2 : 1), 0));
  double* pw = dw ? scratch : nullptr;
  double* pb = db ? (dw ? scratch + part : scratch) : nullptr;
  norm_param_partials<kRms, TD, TX><<<dim3((unsigned)tiles, (unsigned)chunks), dim3(kColTile, kRowLanes), 0, cu::stream()>>>(
      pw, pb, dy, x, mean, rstd, r, c, chunk_rows);
  cu::launched(k);
  add_partials_kernel<<<cu::grid_for(c), cu::kThreads, 0, cu::stream()>>>(dw, pw, db, pb, chunks, c);
  cu::launched(k);
}

// ---- argument checks (as norm.cc) ---------------------------------------------------------------

struct Rows {
  int64_t r = 0, c = 0;
};

Rows check_x(const char* k, const View& x) {
  need_float_contig(k, "x", x);
  Rows d;
  rows_of(x, d.r, d.c);
  return d;
}

void check_vec(const char* k, const char* what, const View& v, int64_t n) {
  if (!v.present) return;
  need_f32_contig(k, what, v);
  need_numel(k, what, v, n);
}

void check_like(const char* k, const char* what, const View& v, const View& x) {
  if (!v.present) return;
  need_float_contig(k, what, v);
  need_same_shape(k, what, v, x);
}

inline float* opt(const View& v) { return v.present ? v.f() : nullptr; }

}  // namespace

// The three float element types of (a, b, c) views, as f(TA{}, TB{}, TC{}) (absent views: float).
template <class F>
void with_floats(const View& a, const View& b, const View& c, F&& f) {
  auto dt = [](const View& v) { return v.present ? v.dtype : DType::F32; };
  cu::with_float(dt(a), [&](auto ta) { cu::with_float(dt(b), [&](auto tb) { cu::with_float(dt(c), [&](auto tc) { f(ta, tb, tc); }); }); });
}

void layernorm(const View& out, const View& mean, const View& rstd, const View& x, const View& w, const View& b, double eps) {
  const char* k = "layerNorm";
  const Rows d = check_x(k, x);
  check_like(k, "output", out, x);
  check_vec(k, "mean", mean, d.r);
  check_vec(k, "rstd", rstd, d.r);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "bias", b, d.c);
  if (d.c == 0) return;
  with_floats(out, x, x, [&](auto to, auto tx, auto) {
    using TO = decltype(to);
    using TX = decltype(tx);
    launch_rows(k, d.r, d.c, layernorm_kernel<false, TO, TX>, layernorm_kernel<true, TO, TX>, cu::at<TO>(out), mean.f(), rstd.f(),
                cu::at<const TX>(x), (const float*)opt(w), (const float*)opt(b), d.r, d.c, eps);
  });
}

void layernorm_backward(const View& dx, const View& dw, const View& db, const View& dy, const View& x, const View& w,
                        const View& mean, const View& rstd) {
  const char* k = "layerNormBackward";
  const Rows d = check_x(k, x);
  check_like(k, "dx", dx, x);
  check_like(k, "dy", dy, x);
  check_vec(k, "dw", dw, d.c);
  check_vec(k, "db", db, d.c);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "mean", mean, d.r);
  check_vec(k, "rstd", rstd, d.r);
  const int64_t r = d.r, c = d.c;
  if (r == 0 || c == 0) return;
  with_floats(dx, dy, x, [&](auto to, auto td, auto tx) {
    using TO = decltype(to);
    using TD = decltype(td);
    using TX = decltype(tx);
    if (dx.present)
      launch_rows(k, r, c, layernorm_dx_kernel<false, TO, TD, TX>, layernorm_dx_kernel<true, TO, TD, TX>, cu::at<TO>(dx),
                  cu::at<const TD>(dy), cu::at<const TX>(x), (const float*)opt(w), (const float*)mean.f(), (const float*)rstd.f(), r, c);
    param_grads<false, TD, TX>(k, opt(dw), opt(db), cu::at<const TD>(dy), cu::at<const TX>(x), mean.f(), rstd.f(), r, c);
  });
}

void rmsnorm(const View& out, const View& rstd, const View& x, const View& w, double eps) {
  const char* k = "rmsNorm";
  const Rows d = check_x(k, x);
  check_like(k, "output", out, x);
  check_vec(k, "rstd", rstd, d.r);
  check_vec(k, "weight", w, d.c);
  if (d.c == 0) return;
  with_floats(out, x, x, [&](auto to, auto tx, auto) {
    using TO = decltype(to);
    using TX = decltype(tx);
    launch_rows(k, d.r, d.c, rmsnorm_kernel<false, TO, TX>, rmsnorm_kernel<true, TO, TX>, cu::at<TO>(out), rstd.f(),
                cu::at<const TX>(x), (const float*)opt(w), d.r, d.c, eps);
  });
}

void rmsnorm_backward(const View& dx, const View& dw, const View& dy, const View& x, const View& w, const View& rstd) {
  const char* k = "rmsNormBackward";
  const Rows d = check_x(k, x);
  check_like(k, "dx", dx, x);
  check_like(k, "dy", dy, x);
  check_vec(k, "dw", dw, d.c);
  check_vec(k, "weight", w, d.c);
  check_vec(k, "rstd", rstd, d.r);
  const int64_t r = d.r, c = d.c;
  if (r == 0 || c == 0) return;
  with_floats(dx, dy, x, [&](auto to, auto td, auto tx) {
    using TO = decltype(to);
    using TD = decltype(td);
    using TX = decltype(tx);
    if (dx.present)
      launch_rows(k, r, c, rmsnorm_dx_kernel<false, TO, TD, TX>, rmsnorm_dx_kernel<true, TO, TD, TX>, cu::at<TO>(dx),
                  cu::at<const TD>(dy), cu::at<const TX>(x), (const float*)opt(w), (const float*)rstd.f(), r, c);
    param_grads<true, TD, TX>(k, opt(dw), nullptr, cu::at<const TD>(dy), cu::at<const TX>(x), nullptr, rstd.f(), r, c);
  });
}

}  // namespace vera
