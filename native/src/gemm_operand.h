// How a GEMM operand's [rows, cols] slice is handed to a row-major BLAS call: in place as 'N' or 'T'
// from whichever of its strides is 1, or packed dense first. Shared by matmul.cc (dnnl_sgemm) and
// cuda/matmul.cu (cuBLASLt).
#pragma once

#include <algorithm>
#include <cstdint>

namespace vera {

// How one [rows, cols] slice of a 3-D view is handed to sgemm.
struct Operand {
  bool trans = false;  // stored column-major (the transpose is row-major)
  int64_t ld = 1;
  bool packed = false;  // needs copying into a dense row-major scratch
};

inline Operand classify(int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
  Operand op;
  if ((scol == 1 || cols == 1) && (rows == 1 || srow >= std::max<int64_t>(cols, 1))) {
    op.ld = rows == 1 ? std::max<int64_t>(cols, 1) : srow;
    return op;
  }
  if ((srow == 1 || rows == 1) && (cols == 1 || scol >= std::max<int64_t>(rows, 1))) {
    op.trans = true;
    op.ld = cols == 1 ? std::max<int64_t>(rows, 1) : scol;
    return op;
  }
  op.packed = true;
  op.ld = std::max<int64_t>(cols, 1);
  return op;
}

}  // namespace vera
