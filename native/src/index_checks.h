// Host-side checks and shape arithmetic of the index-driven kernels (embedding tables, gather and
// scatter_add indices), shared by the CPU (embedding.cc) and CUDA (cuda/embedding.cu) kernels.
#pragma once

#include "common.h"

namespace vera {

inline void check_table(const char* k, const char* what, const View& w) {
  need_f32_contig(k, what, w);
  if (w.ndim != 2) fail(k, "%s must be 2-D [rows, width], got shape %s", what, w.shape_str().c_str());
}

inline void check_index(const char* k, const View& t, const View& index, int axis) {
  need_dtype(k, "index", index, DType::I32);
  need_contig(k, "index", index);
  if (t.ndim != index.ndim) fail(k, "index rank %d differs from the tensor's rank %d", index.ndim, t.ndim);
  if (axis < 0 || axis >= t.ndim) fail(k, "axis %d is out of range for rank %d", axis, t.ndim);
  for (int d = 0; d < t.ndim; d++)
    if (d != axis && index.shape[d] != t.shape[d])
      fail(k, "index shape %s must match %s outside axis %d", index.shape_str().c_str(), t.shape_str().c_str(), axis);
}

// (outer, size along axis, inner) of a contiguous shape.
inline void around(const View& v, int axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int d = 0; d < axis; d++) outer *= v.shape[d];
  for (int d = axis + 1; d < v.ndim; d++) inner *= v.shape[d];
  n = v.shape[axis];
}

}  // namespace vera
