// Declarations of every kernel of the backend contract (src/backends/backend.ts), in llm.c's argument
// order: outputs first, then inputs, then sizes and options. Each kernel validates what it needs beyond
// what addon.cc checked (every view lies inside its buffer) and throws vera::Error on bad arguments.
#pragma once

#include <cstdint>

#include "common.h"

namespace vera {

// Op codes; the name tables in ops.cc give the order, and the TS binding reads them from the addon.
enum UnaryOp { U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_SIGN, U_SIN, U_COS, U_TANH, U_SIGMOID, U_RELU, U_GELU, U_GELU_TANH, U_SILU, U_SQUARE, U_RECIP, U_COUNT };
enum ScalarOp { S_ADD, S_MUL, S_POW, S_RSUB, S_MAX, S_MIN, S_EQ, S_NE, S_LT, S_LE, S_GT, S_GE, S_COUNT };
enum BinaryOp { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };
enum UnaryGradOp { G_GELU, G_GELU_TANH, G_SILU, G_TANH, G_SIGMOID, G_RELU, G_COUNT };
enum ReduceOp { R_SUM, R_MAX, R_MIN, R_COUNT };

extern const char* const kUnaryNames[U_COUNT];
extern const char* const kScalarNames[S_COUNT];
extern const char* const kBinaryNames[B_COUNT];
extern const char* const kUnaryGradNames[G_COUNT];
extern const char* const kReduceNames[R_COUNT];

// copy.cc
void copy(const View& out, const View& a);
void fill(const View& out, double value);
// Copies a view into dense host memory of the same dtype (download).
void copy_to_host(void* dst, const View& a);

// elementwise.cc
void unary(int op, const View& out, const View& a);
void scalar(int op, const View& out, const View& a, double s);
void binary(int op, const View& out, const View& a, const View& b);
void unary_grad(int op, const View& dx, const View& x, const View& dy);
// out = f(x) and grad = f'(x) in one pass (contiguous f32 views of one shape), op a UnaryGradOp.
// Native only: the cuda addon does not export it.
void unary_with_grad(int op, const View& out, const View& grad, const View& x);
void where(const View& out, const View& cond, const View& a, const View& b);

// reduce.cc
void reduce(int op, const View& out, const View& a, const int* axes, int naxes);
void argmax(const View& out, const View& a);
void topk(const View& values, const View& indices, const View& a, int64_t k);

// matmul.cc (f32 operands; a bf16 operand goes to matmul_bf16)
void matmul(const View& out, const View& a, const View& b, bool accumulate);
// matmul_bf16.cc: either operand bf16, computed in bf16 with f32 accumulation (checked by matmul()).
void matmul_bf16(const View& out, const View& a, const View& b, bool accumulate);
// Which implementation bf16 GEMMs use on this CPU, e.g. "oneDNN brg:avx512_core_bf16".
std::string bf16_gemm_impl();

// softmax.cc
void softmax(const View& out, const View& a, bool log);
void softmax_backward(const View& dx, const View& y, const View& dy, bool log);

// norm.cc (absent optional views have present == false)
void layernorm(const View& out, const View& mean, const View& rstd, const View& x, const View& w, const View& b, double eps);
void layernorm_backward(const View& dx, const View& dw, const View& db, const View& dy, const View& x, const View& w,
                        const View& mean, const View& rstd);
void rmsnorm(const View& out, const View& rstd, const View& x, const View& w, double eps);
void rmsnorm_backward(const View& dx, const View& dw, const View& dy, const View& x, const View& w, const View& rstd);

// embedding.cc
void embedding(const View& out, const View& weight, const View& ids);
void embedding_backward(const View& dweight, const View& dy, const View& ids);
void gather(const View& out, const View& a, const View& index, int axis);
void scatter_add(const View& out, const View& index, const View& src, int axis);

// attention.cc
// Dropout of the attention probabilities: (b, h, i, j) is kept when the Philox uniform of absolute
// index offset + ((b·Hq + h)·Tq + i)·Tk + j is >= p (the dropout kernel's mask over [B, Hq, Tq, Tk]).
struct AttentionDropout {
  bool on = false;
  double p = 0;
  uint64_t seed = 0, offset = 0;
};
struct AttentionOpts {
  float scale;
  bool causal;
  int64_t window;
  View key_mask;  // present == false when absent
  AttentionDropout dropout;
  // The caller allows bf16 rounding of q, k, v, P and dS (its weights are bf16); a backend with a
  // faster bf16 path (CUDA's tensor cores) may take it, the CPU kernel computes in f32 regardless.
  bool low_precision = false;
};
void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const AttentionOpts& o);
void attention_backward(const View& dq, const View& dk, const View& dv, const View& dout, const View& q, const View& k,
                        const View& v, const View& out, const View& lse, const AttentionOpts& o);

// loss.cc
void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore_index,
                   double label_smoothing);
void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore_index, double label_smoothing);

// The gated MLP activation (elementwise.cc; native/cuda/gated.cu) and per-feature scalings folded into
// a weight (scale.cc; native/cuda/scale.cu).
void gated_activation(int op, const View& out, const View& gate, const View& up);
void gated_activation_backward(int op, const View& dgate, const View& dup, const View& gate, const View& up,
                               const View& dy);
void scale_fold(const View& out, const View& w, const View& row_scale, const View& col_scale);
void scale_grads(const View& row_grad, const View& col_grad, const View& g, const View& w, const View& row_scale,
                 const View& col_scale);
void scale_add(const View& out, const View& a, const View& v, const View& s);
void scale_backward(const View& dv, const View& ds, const View& dy, const View& v, const View& s);

// rope.cc
void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse);

// dropout.cc (seed and offset as the 64-bit integers philox.ts derives from the JS numbers)
void dropout(const View& out, const View& a, double p, uint64_t seed, uint64_t offset);

// adamw.cc
struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay, step;
};
void adamw(const View& param, const View& grad, const View& m, const View& v, const AdamWParams& hp);

}  // namespace vera
