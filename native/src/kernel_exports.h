// The N-API wrappers of the contract's kernels (kernels.h), shared by both addons: each reads its
// scalars and views from the descriptor (napi_glue.h) and calls the kernel of the same name, which
// each addon links from its own sources (native/src/*.cc for the CPU, native/cuda/*.cu for CUDA).
// Included once, by each addon's addon.cc.
#pragma once

#include "kernels.h"
#include "napi_glue.h"

namespace vera {
namespace kernel_exports {

// Each reads its scalars from slots 0..7 and its views in the order of the contract's signature.

KERNEL(Copy, "copy", {
  View out = a.view("output"), x = a.view("input");
  copy(out, x);
  return nullptr;
})
KERNEL(Fill, "fill", {
  View out = a.view("output");
  fill(out, a.scalar(0));
  return nullptr;
})
KERNEL(Unary, "unary", {
  const int op = a.op();
  View out = a.view("output"), x = a.view("input");
  unary(op, out, x);
  return nullptr;
})
KERNEL(Scalar, "scalar", {
  const int op = a.op();
  View out = a.view("output"), x = a.view("input");
  scalar(op, out, x, a.scalar(1));
  return nullptr;
})
KERNEL(Binary, "binary", {
  const int op = a.op();
  View out = a.view("output"), x = a.view("operand a"), y = a.view("operand b");
  binary(op, out, x, y);
  return nullptr;
})
KERNEL(UnaryGrad, "unaryGrad", {
  const int op = a.op();
  View dx = a.view("dx"), x = a.view("x"), dy = a.view("dy");
  unary_grad(op, dx, x, dy);
  return nullptr;
})
KERNEL(Where, "where", {
  View out = a.view("output"), c = a.view("cond"), x = a.view("operand a"), y = a.view("operand b");
  where(out, c, x, y);
  return nullptr;
})
// reduce: slot 0 = op, slot 1 = the reduced axes as a bit mask (ranks are at most kMaxDims = 16).
KERNEL(Reduce, "reduce", {
  const int op = a.op();
  View out = a.view("output"), x = a.view("input");
  const double mask = a.scalar(1);
  if (!(mask >= 0 && mask < 65536 && std::floor(mask) == mask)) fail(a.kernel, "invalid axes");
  int axes[kMaxDims];
  int n = 0;
  for (int i = 0; i < kMaxDims; i++)
    if (((int)mask >> i) & 1) axes[n++] = i;
  reduce(op, out, x, axes, n);
  return nullptr;
})
KERNEL(Argmax, "argmax", {
  View out = a.view("output"), x = a.view("input");
  argmax(out, x);
  return nullptr;
})
KERNEL(Topk, "topk", {
  View vals = a.view("values"), idx = a.view("indices"), x = a.view("input");
  const double k = a.scalar(0);
  if (!is_index(k)) fail(a.kernel, "k = %g is not a valid count", k);
  topk(vals, idx, x, (int64_t)k);
  return nullptr;
})
KERNEL(Matmul, "matmul", {
  View out = a.view("output"), x = a.view("a"), y = a.view("b");
  matmul(out, x, y, a.scalar(0) != 0);
  return nullptr;
})
KERNEL(Softmax, "softmax", {
  View out = a.view("output"), x = a.view("input");
  softmax(out, x, a.scalar(0) != 0);
  return nullptr;
})
KERNEL(SoftmaxBackward, "softmaxBackward", {
  View dx = a.view("dx"), y = a.view("y"), dy = a.view("dy");
  softmax_backward(dx, y, dy, a.scalar(0) != 0);
  return nullptr;
})
KERNEL(LayerNorm, "layerNorm", {
  View out = a.view("output"), mean = a.view("mean"), rstd = a.view("rstd"), x = a.view("x");
  View w = a.view("weight", true), b = a.view("bias", true);
  layernorm(out, mean, rstd, x, w, b, a.scalar(0));
  return nullptr;
})
KERNEL(LayerNormBackward, "layerNormBackward", {
  View dx = a.view("dx", true), dw = a.view("dw", true), db = a.view("db", true);
  View dy = a.view("dy"), x = a.view("x"), w = a.view("weight", true), mean = a.view("mean"), rstd = a.view("rstd");
  layernorm_backward(dx, dw, db, dy, x, w, mean, rstd);
  return nullptr;
})
KERNEL(RmsNorm, "rmsNorm", {
  View out = a.view("output"), rstd = a.view("rstd"), x = a.view("x"), w = a.view("weight", true);
  rmsnorm(out, rstd, x, w, a.scalar(0));
  return nullptr;
})
KERNEL(RmsNormBackward, "rmsNormBackward", {
  View dx = a.view("dx", true), dw = a.view("dw", true);
  View dy = a.view("dy"), x = a.view("x"), w = a.view("weight", true), rstd = a.view("rstd");
  rmsnorm_backward(dx, dw, dy, x, w, rstd);
  return nullptr;
})
KERNEL(Embedding, "embedding", {
  View out = a.view("output"), w = a.view("weight"), ids = a.view("ids");
  embedding(out, w, ids);
  return nullptr;
})
KERNEL(EmbeddingBackward, "embeddingBackward", {
  View dw = a.view("dweight"), dy = a.view("dy"), ids = a.view("ids");
  embedding_backward(dw, dy, ids);
  return nullptr;
})
int axis_arg(Args& a) {
  const double ax = a.scalar(0);
  if (!(ax >= 0 && ax < kMaxDims && std::floor(ax) == ax)) fail(a.kernel, "invalid axis %g", ax);
  return (int)ax;
}
KERNEL(Gather, "gather", {
  View out = a.view("output"), x = a.view("input"), idx = a.view("index");
  gather(out, x, idx, axis_arg(a));
  return nullptr;
})
KERNEL(ScatterAdd, "scatterAdd", {
  View out = a.view("output"), idx = a.view("index"), src = a.view("src");
  scatter_add(out, idx, src, axis_arg(a));
  return nullptr;
})
// attention scalars: [scale, causal, window, dropout on, p, seed_lo, seed_hi, offset, low precision] (seed split in
// TS exactly as philox.ts does); views ..., keyMask (optional) last.
AttentionOpts attention_opts(Args& a) {
  AttentionOpts o;
  o.scale = (float)a.scalar(0);
  o.causal = a.scalar(1) != 0;
  const double w = a.scalar(2);
  if (!(w >= 0 && std::floor(w) == w) || w > kMaxSafe) fail(a.kernel, "window must be a non-negative integer, got %g", w);
  o.window = (int64_t)w;
  if (a.scalar(3) != 0) {
    const double p = a.scalar(4), lo = a.scalar(5), hi = a.scalar(6), off = a.scalar(7);
    if (!(p >= 0 && p < 1)) fail(a.kernel, "dropout p = %g must be in [0, 1)", p);
    if (!(lo >= 0 && lo < 4294967296.0 && hi >= 0 && hi < 4294967296.0)) fail(a.kernel, "invalid dropout seed");
    if (!is_index(off)) fail(a.kernel, "dropout offset must be a non-negative integer, got %g", off);
    o.dropout.on = true;
    o.dropout.p = p;
    o.dropout.seed = ((uint64_t)hi << 32) | (uint64_t)lo;
    o.dropout.offset = (uint64_t)off;
  }
  o.low_precision = a.scalar(8) != 0;
  return o;
}
KERNEL(Attention, "attention", {
  AttentionOpts o = attention_opts(a);
  View out = a.view("output"), lse = a.view("lse"), q = a.view("q"), k = a.view("k"), v = a.view("v");
  o.key_mask = a.view("keyMask", true);
  attention(out, lse, q, k, v, o);
  return nullptr;
})
KERNEL(AttentionBackward, "attentionBackward", {
  AttentionOpts o = attention_opts(a);
  View dq = a.view("dq"), dk = a.view("dk"), dv = a.view("dv"), dout = a.view("dout");
  View q = a.view("q"), k = a.view("k"), v = a.view("v"), out = a.view("out"), lse = a.view("lse");
  o.key_mask = a.view("keyMask", true);
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, o);
  return nullptr;
})
int64_t ignore_index_arg(Args& a) {
  const double x = a.scalar(0);
  if (!(std::floor(x) == x && std::fabs(x) <= kMaxSafe)) fail(a.kernel, "ignoreIndex must be an integer, got %g", x);
  return (int64_t)x;
}
KERNEL(CrossEntropy, "crossEntropy", {
  View loss = a.view("loss"), lse = a.view("lse"), logits = a.view("logits"), t = a.view("targets");
  cross_entropy(loss, lse, logits, t, ignore_index_arg(a), a.scalar(1));
  return nullptr;
})
KERNEL(CrossEntropyBackward, "crossEntropyBackward", {
  View dl = a.view("dlogits"), dloss = a.view("dloss"), logits = a.view("logits"), lse = a.view("lse"), t = a.view("targets");
  cross_entropy_backward(dl, dloss, logits, lse, t, ignore_index_arg(a), a.scalar(1));
  return nullptr;
})
KERNEL(Rope, "rope", {
  View out = a.view("output"), x = a.view("x"), c = a.view("cos"), s = a.view("sin");
  rope(out, x, c, s, a.scalar(0) != 0);
  return nullptr;
})
// dropout scalars: [p, seed_lo, seed_hi, offset] (seed split in TS exactly as philox.ts does).
KERNEL(Dropout, "dropout", {
  View out = a.view("output"), x = a.view("input");
  const double lo = a.scalar(1), hi = a.scalar(2), off = a.scalar(3);
  if (!(lo >= 0 && lo < 4294967296.0 && hi >= 0 && hi < 4294967296.0)) fail(a.kernel, "invalid seed");
  if (!is_index(off)) fail(a.kernel, "offset must be a non-negative integer, got %g", off);
  const uint64_t seed = ((uint64_t)hi << 32) | (uint64_t)lo;
  dropout(out, x, a.scalar(0), seed, (uint64_t)off);
  return nullptr;
})
KERNEL(AdamW, "adamw", {
  View p = a.view("param"), g = a.view("grad"), m = a.view("m"), v = a.view("v");
  AdamWParams hp{a.scalar(0), a.scalar(1), a.scalar(2), a.scalar(3), a.scalar(4), a.scalar(5)};
  adamw(p, g, m, v, hp);
  return nullptr;
})


// The gated MLP activation (op code in slot 0) and the scale folds.
KERNEL(GatedActivation, "gatedActivation", {
  const int op = a.op();
  View out = a.view("output"), g = a.view("gate"), u = a.view("up");
  gated_activation(op, out, g, u);
  return nullptr;
})
KERNEL(GatedActivationBackward, "gatedActivationBackward", {
  const int op = a.op();
  View dg = a.view("dgate", true), du = a.view("dup", true), g = a.view("gate"), u = a.view("up"), dy = a.view("dy");
  gated_activation_backward(op, dg, du, g, u, dy);
  return nullptr;
})
KERNEL(ScaleFold, "scaleFold", {
  View out = a.view("output"), w = a.view("w"), r = a.view("rowScale", true), c = a.view("colScale", true);
  scale_fold(out, w, r, c);
  return nullptr;
})
KERNEL(ScaleAdd, "scaleAdd", {
  View out = a.view("output"), x = a.view("a"), v = a.view("v"), s = a.view("s");
  scale_add(out, x, v, s);
  return nullptr;
})
KERNEL(ScaleBackward, "scaleBackward", {
  View dv = a.view("dv", true), ds = a.view("ds", true), dy = a.view("dy"), v = a.view("v"), s = a.view("s");
  scale_backward(dv, ds, dy, v, s);
  return nullptr;
})
KERNEL(ScaleGrads, "scaleGrads", {
  View rg = a.view("rowGrad", true), cg = a.view("colGrad", true), g = a.view("g"), w = a.view("w");
  View r = a.view("rowScale", true), c = a.view("colScale", true);
  scale_grads(rg, cg, g, w, r, c);
  return nullptr;
})

}  // namespace kernel_exports

// Registers every kernel wrapper on `exports` and the op-name tables under exports.names (the
// caller adds its own entries to the same `names` object through export_tables).
inline void export_kernels(napi_env env, napi_value exports) {
  using namespace kernel_exports;
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"copy", Copy},
      {"fill", Fill},
      {"unary", Unary},
      {"scalar", Scalar},
      {"binary", Binary},
      {"unaryGrad", UnaryGrad},
      {"where", Where},
      {"reduce", Reduce},
      {"argmax", Argmax},
      {"topk", Topk},
      {"matmul", Matmul},
      {"softmax", Softmax},
      {"softmaxBackward", SoftmaxBackward},
      {"layerNorm", LayerNorm},
      {"layerNormBackward", LayerNormBackward},
      {"rmsNorm", RmsNorm},
      {"rmsNormBackward", RmsNormBackward},
      {"embedding", Embedding},
      {"embeddingBackward", EmbeddingBackward},
      {"gather", Gather},
      {"scatterAdd", ScatterAdd},
      {"attention", Attention},
      {"attentionBackward", AttentionBackward},
      {"crossEntropy", CrossEntropy},
      {"crossEntropyBackward", CrossEntropyBackward},
      {"rope", Rope},
      {"dropout", Dropout},
      {"adamw", AdamW},
      {"gatedActivation", GatedActivation},
      {"gatedActivationBackward", GatedActivationBackward},
      {"scaleFold", ScaleFold},
      {"scaleGrads", ScaleGrads},
      {"scaleAdd", ScaleAdd},
      {"scaleBackward", ScaleBackward},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    set_prop(env, exports, f.name, fn);
  }
}

// The op-name tables, for export_tables' `names` object.
inline napi_value kernel_names(napi_env env) {
  napi_value names;
  napi_create_object(env, &names);
  set_prop(env, names, "unary", string_array(env, kUnaryNames, U_COUNT));
  set_prop(env, names, "scalar", string_array(env, kScalarNames, S_COUNT));
  set_prop(env, names, "binary", string_array(env, kBinaryNames, B_COUNT));
  set_prop(env, names, "unaryGrad", string_array(env, kUnaryGradNames, G_COUNT));
  set_prop(env, names, "reduce", string_array(env, kReduceNames, R_COUNT));
  return names;
}

}  // namespace vera
