// Index-driven kernels: embedding lookup (f32 or bf16 table, f32 or bf16 out: a bf16 table's rows are
// copied bit-exact into a bf16 out, widened into an f32 one, an f32 table's rounded into a bf16 one)
// and its scatter-add backward (f32 or bf16 dy, f32 dweight), torch.gather (f32 or bf16 input and
// out) and scatter_add (f32 only). An id or index out of range is never followed: the element is skipped
// (a lookup writes 0) and the first bad value is recorded for the host (device.cuh, DeviceError).
// The scatters are race-free and deterministic by construction: each thread owns output columns (or
// (outer, inner) slots) and adds into them in row order, so there are no atomics.
#include <type_traits>

#include "bf16.cuh"
#include "kernels.h"
#include "index_checks.h"
#include "strided.cuh"

namespace vera {
namespace {

// out[j] = in[j] as out's type: the bits when the types agree, else widened or rounded.
template <class TO, class TI>
__device__ __forceinline__ void put(TO* o, int64_t j, const TI* x, int64_t i) {
  if constexpr (std::is_same<TO, TI>::value) o[j] = x[i];
  else cu::st(o, j, cu::ld(x, i));
}

template <class TO, class T>
__global__ void embedding_kernel(TO* o, const T* w, const int32_t* ids, int64_t n, int64_t c, int64_t rows, cu::DeviceError* err) {
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const int32_t id = ids[i];
    const bool ok = id >= 0 && id < rows;
    if (!ok && threadIdx.x == 0 && blockIdx.x == 0) cu::report_bad(err, cu::EK_EMBEDDING, id, i, rows);
    const T* src = w + (ok ? (int64_t)id * c : 0);
    TO* dst = o + i * c;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < c; j += (int64_t)gridDim.x * blockDim.x) {
      if (ok) put(dst, j, src, j);
      else cu::st(dst, j, 0.0f);
    }
  }
}

template <class TD>
__global__ void embedding_backward_kernel(float* g, const TD* d, const int32_t* ids, int64_t n, int64_t c, int64_t rows,
                                          cu::DeviceError* err) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int64_t i = 0; i < n; i++) {
    const int32_t id = ids[i];
    if (id < 0 || id >= rows) {
      if (j == 0) cu::report_bad(err, cu::EK_EMBEDDING_BACKWARD, id, i, rows);
      continue;
    }
    g[(int64_t)id * c + j] += cu::ld(d, i * c + j);
  }
}

template <class TO, class TI>
__global__ void gather_kernel(TO* o, const TI* x, const int32_t* idx, int64_t total, int64_t ni, int64_t na, int64_t inner,
                              cu::DeviceError* err) {
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < total; q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = q % inner, ob = q / inner / ni;
    const int32_t id = idx[q];
    if (id < 0 || id >= na) {
      cu::report_bad(err, cu::EK_GATHER, id, q, na);
      cu::st(o, q, 0.0f);
      continue;
    }
    put(o, q, x, (ob * na + id) * inner + r);
  }
}

__global__ void scatter_add_kernel(float* o, const int32_t* idx, const float* s, int64_t slots, int64_t ni, int64_t na, int64_t inner,
                                   cu::DeviceError* err) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < slots; p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ob = p / inner, r = p % inner;
    for (int64_t i = 0; i < ni; i++) {
      const int64_t kk = (ob * ni + i) * inner + r;
      const int32_t id = idx[kk];
      if (id < 0 || id >= na) {
        cu::report_bad(err, cu::EK_SCATTER_ADD, id, kk, na);
        continue;
      }
      o[(ob * na + id) * inner + r] += s[kk];
    }
  }
}

}  // namespace

void embedding(const View& out, const View& weight, const View& ids) {
  const char* k = "embedding";
  const bool half = weight.dtype == DType::BF16;
  if (half) {
    need_contig(k, "weight", weight);
    if (weight.ndim != 2) fail(k, "weight must be 2-D [rows, width], got shape %s", weight.shape_str().c_str());
  } else {
    check_table(k, "weight", weight);
  }
  need_dtype(k, "ids", ids, DType::I32);
  need_contig(k, "ids", ids);
  need_float_contig(k, "output", out);
  const int64_t v = weight.shape[0], c = weight.shape[1], n = ids.numel();
  need_numel(k, "output", out, n * c);
  if (n == 0 || c == 0) return;
  const int threads = c >= 256 ? 256 : 64;
  dim3 grid((unsigned)((c + threads - 1) / threads > 8 ? 8 : (c + threads - 1) / threads), (unsigned)(n < 65535 ? n : 65535));
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(weight.dtype, [&](auto tw) {
      using TO = decltype(to);
      using TW = decltype(tw);
      embedding_kernel<TO, TW><<<grid, threads, 0, cu::stream()>>>(cu::at<TO>(out), cu::at<const TW>(weight), ids.ptr<int32_t>(), n,
                                                                   c, v, cu::device_error());
    });
  });
  cu::launched(k);
}

void embedding_backward(const View& dweight, const View& dy, const View& ids) {
  const char* k = "embeddingBackward";
  check_table(k, "dweight", dweight);
  need_dtype(k, "ids", ids, DType::I32);
  need_contig(k, "ids", ids);
  need_float_contig(k, "dy", dy);
  const int64_t v = dweight.shape[0], c = dweight.shape[1], n = ids.numel();
  need_numel(k, "dy", dy, n * c);
  if (n == 0 || c == 0) return;
  cu::with_float(dy.dtype, [&](auto td) {
    using TD = decltype(td);
    embedding_backward_kernel<TD><<<(unsigned)((c + 127) / 128), 128, 0, cu::stream()>>>(dweight.f(), cu::at<const TD>(dy),
                                                                                       ids.ptr<int32_t>(), n, c, v, cu::device_error());
  });
  cu::launched(k);
}

void gather(const View& out, const View& a, const View& index, int axis) {
  const char* k = "gather";
  need_float_contig(k, "input", a);
  need_float_contig(k, "output", out);
  check_index(k, a, index, axis);
  need_same_shape(k, "output", out, index);
  int64_t outer, na, inner;
  around(a, axis, outer, na, inner);
  const int64_t ni = index.shape[axis];
  const int64_t total = index.numel();
  if (total == 0) return;
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(a.dtype, [&](auto ti) {
      using TO = decltype(to);
      using TI = decltype(ti);
      gather_kernel<TO, TI><<<cu::grid_for(total), cu::kThreads, 0, cu::stream()>>>(cu::at<TO>(out), cu::at<const TI>(a),
                                                                                  index.ptr<int32_t>(), total, ni, na, inner,
                                                                                  cu::device_error());
    });
  });
  cu::launched(k);
}

void scatter_add(const View& out, const View& index, const View& src, int axis) {
  const char* k = "scatterAdd";
  need_f32_contig(k, "output", out);
  need_f32_contig(k, "src", src);
  check_index(k, out, index, axis);
  need_same_shape(k, "src", src, index);
  int64_t outer, na, inner;
  around(out, axis, outer, na, inner);
  const int64_t ni = index.shape[axis];
  const int64_t slots = outer * inner;
  if (slots == 0 || ni == 0) return;
  scatter_add_kernel<<<cu::grid_for(slots), cu::kThreads, 0, cu::stream()>>>(out.f(), index.ptr<int32_t>(), src.f(), slots, ni, na,
                                                                             inner, cu::device_error());
  cu::launched(k);
}

}  // namespace vera
