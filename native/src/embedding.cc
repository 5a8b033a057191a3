// Index-driven kernels: embedding lookup and its scatter-add backward, torch.gather and scatter_add.
// Every id/index is validated before any write, so a bad id throws without touching the output.
// The lookup also reads a bf16 table (frozen weights kept in half the memory), widening each selected
// row exactly to f32 (bits shifted left by 16) as it copies it.
// Backward scatters are race-free by construction (columns or (outer, inner) slots per thread).
#include <cstring>

#include "convert.h"
#include "kernels.h"
#include "index_checks.h"
#include "views.h"

namespace vera {

namespace {

// Checks ids against [0, rows); reports the first bad one.
void check_ids(const char* k, const int32_t* ids, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; i++) {
    const int32_t id = ids[i];
    if (id < 0 || id >= rows)
      fail(k, "id %d at position %lld is out of range for a table of %lld rows", id, (long long)i, (long long)rows);
  }
}

void check_indices(const char* k, const int32_t* idx, int64_t n, int64_t size, int axis) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= size)
      fail(k, "index %d at position %lld is out of range for axis %d of size %lld", idx[i], (long long)i, axis, (long long)size);
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
  need_f32_contig(k, "output", out);
  const int64_t v = weight.shape[0], c = weight.shape[1], n = ids.numel();
  need_numel(k, "output", out, n * c);
  const int32_t* id = ids.ptr<int32_t>();
  check_ids(k, id, n, v);
  float* o = out.f();
  if (half) {
    const uint16_t* w = weight.ptr<uint16_t>();
    parallel_rows(n, c, kGrainCheap, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        const uint16_t* src = w + (int64_t)id[i] * c;
        float* dst = o + i * c;
#pragma omp simd
        for (int64_t j = 0; j < c; j++) dst[j] = bf16_to_f32(src[j]);
      }
    });
    return;
  }
  const float* w = weight.f();
  parallel_rows(n, c, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) std::memmove(o + i * c, w + (int64_t)id[i] * c, sizeof(float) * c);
  });
}

void embedding_backward(const View& dweight, const View& dy, const View& ids) {
  const char* k = "embeddingBackward";
  check_table(k, "dweight", dweight);
  need_dtype(k, "ids", ids, DType::I32);
  need_contig(k, "ids", ids);
  need_f32_contig(k, "dy", dy);
  const int64_t v = dweight.shape[0], c = dweight.shape[1], n = ids.numel();
  need_numel(k, "dy", dy, n * c);
  const int32_t* id = ids.ptr<int32_t>();
  check_ids(k, id, n, v);
  float* g = dweight.f();
  const float* d = dy.f();
  // Threads own column blocks, so repeated ids never race.
  const int64_t blocks = (c + 15) / 16;
  parallel_rows(blocks, n * 16, kGrainCheap, [&](int64_t lo, int64_t hi) {
    const int64_t c0 = lo * 16, c1 = std::min(c, hi * 16);
    for (int64_t i = 0; i < n; i++) {
      float* gr = g + (int64_t)id[i] * c;
      const float* dr = d + i * c;
#pragma omp simd
      for (int64_t j = c0; j < c1; j++) gr[j] += dr[j];
    }
  });
}

void gather(const View& out, const View& a, const View& index, int axis) {
  const char* k = "gather";
  need_f32_contig(k, "input", a);
  need_f32_contig(k, "output", out);
  check_index(k, a, index, axis);
  need_same_shape(k, "output", out, index);
  int64_t outer, na, inner;
  around(a, axis, outer, na, inner);
  const int64_t ni = index.shape[axis];
  const int32_t* idx = index.ptr<int32_t>();
  check_indices(k, idx, index.numel(), na, axis);
  const float* x = a.f();
  float* o = out.f();
  parallel_rows(outer * ni, inner, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t oi = lo; oi < hi; oi++) {
      const int64_t ob = oi / ni;
      const int64_t kbase = oi * inner;
      for (int64_t r = 0; r < inner; r++) o[kbase + r] = x[(ob * na + idx[kbase + r]) * inner + r];
    }
  });
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
  const int32_t* idx = index.ptr<int32_t>();
  check_indices(k, idx, index.numel(), na, axis);
  const float* s = src.f();
  float* o = out.f();
  // Slot (outer, inner) receives only from its own column along the axis: parallel over slots.
  parallel_rows(outer * inner, ni, kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; p++) {
      const int64_t ob = p / inner, r = p % inner;
      for (int64_t i = 0; i < ni; i++) {
        const int64_t kk = (ob * ni + i) * inner + r;
        o[(ob * na + idx[kk]) * inner + r] += s[kk];
      }
    }
  });
}

}  // namespace vera
