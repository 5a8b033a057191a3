// The oneDNN matmul primitive behind the f32 and bf16 GEMM paths (matmul_dnnl.cc).
#pragma once

#include <string>

#include "common.h"

namespace vera {

// out (+)= a·b for 3-D views (the matmul kernel's shapes, already checked), in bf16 (operands rounded
// to bf16) or f32; false when oneDNN offers only its slow reference implementation for it here.
bool matmul_primitive(const View& out, const View& a, const View& b, bool accumulate, bool bf16);
// The implementation oneDNN picks for a plain 64×64×64 GEMM of that kind (e.g. "brg:avx512_core_bf16").
std::string matmul_primitive_impl(bool bf16);

}  // namespace vera
