// The op-name tables of kernels.h's op codes, in code order. Both addons export them, so the TS
// binding never hard-codes a code.
#include "kernels.h"

namespace vera {

const char* const kUnaryNames[U_COUNT] = {"neg",  "exp",  "log",  "sqrt", "rsqrt",     "abs",  "sign",   "sin",  "cos",
                                          "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "square", "recip"};
const char* const kScalarNames[S_COUNT] = {"add_s", "mul_s", "pow_s", "rsub_s", "max_s", "min_s",
                                           "eq_s",  "ne_s",  "lt_s",  "le_s",   "gt_s",  "ge_s"};
const char* const kBinaryNames[B_COUNT] = {"add", "sub", "mul", "div", "pow", "max", "min",
                                           "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
const char* const kUnaryGradNames[G_COUNT] = {"gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "relu"};
const char* const kReduceNames[R_COUNT] = {"sum", "max", "min"};

}  // namespace vera
