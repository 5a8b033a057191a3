// Elementwise kernels: unary, scalar, binary (broadcast through 0 strides), fused activation
// derivatives, and where. f32 views take typed, vectorised loops with fast paths for dense and
// broadcast-scalar runs; other dtypes go through the js backend's read-as-double / store semantics.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "convert.h"
#include "kernels.h"
#include "mathfun.h"
#include "views.h"

namespace vera {

namespace {

// ---- scalar semantics of JS Math where C differs --------------------------------------------------

inline double js_pow(double x, double y) {
  if (y != y) return NAN;                                  // C: pow(1, NaN) = 1
  if (std::isinf(y) && std::fabs(x) == 1.0) return NAN;    // C: pow(-1, ±inf) = 1
  return std::pow(x, y);
}
// Math.max / Math.min: NaN wins, and +0 > −0.
template <class T>
VERA_INLINE T js_max(T a, T b) {
  if (a > b) return a;
  if (b > a) return b;
  if (a != a || b != b) return a + b;
  return std::signbit(a) ? b : a;
}
template <class T>
VERA_INLINE T js_min(T a, T b) {
  if (a < b) return a;
  if (b < a) return b;
  if (a != a || b != b) return a + b;
  return std::signbit(a) ? a : b;
}

template <int OP>
VERA_INLINE float un(float x) {
  if constexpr (OP == U_NEG) return -x;
  else if constexpr (OP == U_EXP) return vexp(x);
  else if constexpr (OP == U_LOG) return vlog(x);
  else if constexpr (OP == U_SQRT) return std::sqrt(x);
  else if constexpr (OP == U_RSQRT) return (float)(1.0 / std::sqrt((double)x));
  else if constexpr (OP == U_ABS) return std::fabs(x);
  else if constexpr (OP == U_SIGN) return x > 0 ? 1.0f : x < 0 ? -1.0f : x;
  else if constexpr (OP == U_SIN) return (float)std::sin((double)x);
  else if constexpr (OP == U_COS) return (float)std::cos((double)x);
  else if constexpr (OP == U_TANH) return vtanh(x);
  else if constexpr (OP == U_SIGMOID) return vsigmoid(x);
  else if constexpr (OP == U_RELU) return x > 0 ? x : (x != x ? x : 0.0f);
  else if constexpr (OP == U_GELU) return gelu_erf(x);
  else if constexpr (OP == U_GELU_TANH) return vgelu_tanh(x);
  else if constexpr (OP == U_SILU) return vsilu(x);
  else if constexpr (OP == U_SQUARE) return x * x;
  else return 1.0f / x;
}

constexpr bool heavy_unary(int op) {
  return op == U_EXP || op == U_LOG || op == U_SIN || op == U_COS || op == U_TANH || op == U_SIGMOID ||
         op == U_GELU || op == U_GELU_TANH || op == U_SILU;
}

template <int OP>
void unary_run(const View& out, const View& a) {
  const View* vs[2] = {&out, &a};
  Layout<2> L = make_layout<2>(kUnaryNames[OP], vs);
  float* o = static_cast<float*>(out.base);
  const float* x = static_cast<const float*>(a.base);
  for_each_run(L, heavy_unary(OP) ? kGrainHeavy : kGrainCheap, [&](int64_t n, const int64_t* off, const int64_t* st) {
    float* op = o + off[0];
    const float* xp = x + off[1];
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; i++) op[i] = un<OP>(xp[i]);
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = un<OP>(xp[i * st[1]]);
    }
  });
}

template <int... OPS>
void unary_dispatch(int op, const View& out, const View& a, std::integer_sequence<int, OPS...>) {
  using Fn = void (*)(const View&, const View&);
  static constexpr Fn table[] = {&unary_run<OPS>...};
  table[op](out, a);
}

// ---- scalar ops: computed in double like the js backend, rounded on store -------------------------

constexpr bool is_cmp_s(int op) { return op >= S_EQ; }

template <int OP>
VERA_INLINE double sc(double x, double s) {
  if constexpr (OP == S_ADD) return x + s;
  else if constexpr (OP == S_MUL) return x * s;
  else if constexpr (OP == S_POW) return js_pow(x, s);
  else if constexpr (OP == S_RSUB) return s - x;
  else if constexpr (OP == S_MAX) return js_max(x, s);
  else if constexpr (OP == S_MIN) return js_min(x, s);
  else if constexpr (OP == S_EQ) return x == s;
  else if constexpr (OP == S_NE) return x != s;
  else if constexpr (OP == S_LT) return x < s;
  else if constexpr (OP == S_LE) return x <= s;
  else if constexpr (OP == S_GT) return x > s;
  else return x >= s;
}

template <int OP>
void scalar_run(const View& out, const View& a, double s) {
  const View* vs[2] = {&out, &a};
  Layout<2> L = make_layout<2>(kScalarNames[OP], vs);
  const int64_t grain = OP == S_POW ? kGrainHeavy : kGrainCheap;
  if (a.dtype == DType::F32 && (out.dtype == DType::F32 || out.dtype == DType::Bool)) {
    const float* x = static_cast<const float*>(a.base);
    for_each_run(L, grain, [&](int64_t n, const int64_t* off, const int64_t* st) {
      const float* xp = x + off[1];
      if constexpr (is_cmp_s(OP)) {
        uint8_t* op = static_cast<uint8_t*>(out.base) + off[0];
        if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; i++) op[i] = (uint8_t)sc<OP>(xp[i], s);
        } else {
          for (int64_t i = 0; i < n; i++) op[i * st[0]] = (uint8_t)sc<OP>(xp[i * st[1]], s);
        }
      } else {
        float* op = static_cast<float*>(out.base) + off[0];
        if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; i++) op[i] = (float)sc<OP>(xp[i], s);
        } else {
          for (int64_t i = 0; i < n; i++) op[i * st[0]] = (float)sc<OP>(xp[i * st[1]], s);
        }
      }
    });
    return;
  }
  for_each_run(L, grain, [&](int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; i++)
      store_from_double(out.base, off[0] + i * st[0], out.dtype, sc<OP>(load_as_double(a.base, off[1] + i * st[1], a.dtype), s));
  });
}

template <int... OPS>
void scalar_dispatch(int op, const View& out, const View& a, double s, std::integer_sequence<int, OPS...>) {
  using Fn = void (*)(const View&, const View&, double);
  static constexpr Fn table[] = {&scalar_run<OPS>...};
  table[op](out, a, s);
}

// ---- binary ops -------------------------------------------------------------------------------------

constexpr bool is_cmp_b(int op) { return op >= B_EQ; }

// f32 arithmetic is exactly the js backend's (double op, then round): +, −, ×, ÷ are correctly
// rounded either way. pow goes through double.
template <int OP>
VERA_INLINE float bin_f(float x, float y) {
  if constexpr (OP == B_ADD) return x + y;
  else if constexpr (OP == B_SUB) return x - y;
  else if constexpr (OP == B_MUL) return x * y;
  else if constexpr (OP == B_DIV) return x / y;
  else if constexpr (OP == B_POW) return (float)js_pow(x, y);
  else if constexpr (OP == B_MAX) return js_max(x, y);
  else return js_min(x, y);
}
template <int OP>
VERA_INLINE uint8_t cmp_f(float x, float y) {
  if constexpr (OP == B_EQ) return x == y;
  else if constexpr (OP == B_NE) return x != y;
  else if constexpr (OP == B_LT) return x < y;
  else if constexpr (OP == B_LE) return x <= y;
  else if constexpr (OP == B_GT) return x > y;
  else return x >= y;
}
template <int OP>
inline double bin_d(double x, double y) {
  if constexpr (OP == B_EQ) return x == y;
  else if constexpr (OP == B_NE) return x != y;
  else if constexpr (OP == B_LT) return x < y;
  else if constexpr (OP == B_LE) return x <= y;
  else if constexpr (OP == B_GT) return x > y;
  else if constexpr (OP == B_GE) return x >= y;
  else if constexpr (OP == B_ADD) return x + y;
  else if constexpr (OP == B_SUB) return x - y;
  else if constexpr (OP == B_MUL) return x * y;
  else if constexpr (OP == B_DIV) return x / y;
  else if constexpr (OP == B_POW) return js_pow(x, y);
  else if constexpr (OP == B_MAX) return js_max(x, y);
  else return js_min(x, y);
}

template <int OP, class O>
VERA_INLINE O bin_o(float x, float y) {
  if constexpr (is_cmp_b(OP)) return cmp_f<OP>(x, y);
  else return bin_f<OP>(x, y);
}

template <int OP>
void binary_run(const View& out, const View& a, const View& b) {
  const View* vs[3] = {&out, &a, &b};
  Layout<3> L = make_layout<3>(kBinaryNames[OP], vs);
  const int64_t grain = OP == B_POW ? kGrainHeavy : kGrainCheap;
  if (a.dtype == DType::F32 && b.dtype == DType::F32 && (out.dtype == DType::F32 || out.dtype == DType::Bool)) {
    using O = std::conditional_t<is_cmp_b(OP), uint8_t, float>;
    O* o = static_cast<O*>(out.base);
    const float* x = static_cast<const float*>(a.base);
    const float* y = static_cast<const float*>(b.base);
    for_each_run(L, grain, [&](int64_t n, const int64_t* off, const int64_t* st) {
      O* op = o + off[0];
      const float* xp = x + off[1];
      const float* yp = y + off[2];
      if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) op[i] = bin_o<OP, O>(xp[i], yp[i]);
      } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
        const float yv = yp[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++) op[i] = bin_o<OP, O>(xp[i], yv);
      } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
        const float xv = xp[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++) op[i] = bin_o<OP, O>(xv, yp[i]);
      } else {
        for (int64_t i = 0; i < n; i++) op[i * st[0]] = bin_o<OP, O>(xp[i * st[1]], yp[i * st[2]]);
      }
    });
    return;
  }
  for_each_run(L, grain, [&](int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; i++) {
      const double x = load_as_double(a.base, off[1] + i * st[1], a.dtype);
      const double y = load_as_double(b.base, off[2] + i * st[2], b.dtype);
      store_from_double(out.base, off[0] + i * st[0], out.dtype, bin_d<OP>(x, y));
    }
  });
}

template <int... OPS>
void binary_dispatch(int op, const View& out, const View& a, const View& b, std::integer_sequence<int, OPS...>) {
  using Fn = void (*)(const View&, const View&, const View&);
  static constexpr Fn table[] = {&binary_run<OPS>...};
  table[op](out, a, b);
}

// ---- fused activation derivatives: dx = dy · f'(x) --------------------------------------------------

template <int OP>
VERA_INLINE float grad_f(float x) {
  if constexpr (OP == G_GELU) return gelu_erf_grad(x);
  else if constexpr (OP == G_GELU_TANH) return vgelu_tanh_grad(x);
  else if constexpr (OP == G_SILU) return vsilu_grad(x);
  else if constexpr (OP == G_TANH) return vtanh_grad(x);
  else if constexpr (OP == G_SIGMOID) return vsigmoid_grad(x);
  else return x > 0 ? 1.0f : 0.0f;
}

template <int OP>
void unary_grad_run(const View& dx, const View& x, const View& dy) {
  const View* vs[3] = {&dx, &x, &dy};
  Layout<3> L = make_layout<3>(kUnaryGradNames[OP], vs);
  float* o = static_cast<float*>(dx.base);
  const float* xb = static_cast<const float*>(x.base);
  const float* gb = static_cast<const float*>(dy.base);
  for_each_run(L, OP == G_RELU ? kGrainCheap : kGrainHeavy, [&](int64_t n, const int64_t* off, const int64_t* st) {
    float* op = o + off[0];
    const float* xp = xb + off[1];
    const float* gp = gb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; i++) op[i] = gp[i] * grad_f<OP>(xp[i]);
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = gp[i * st[2]] * grad_f<OP>(xp[i * st[1]]);
    }
  });
}

template <int... OPS>
void unary_grad_dispatch(int op, const View& dx, const View& x, const View& dy, std::integer_sequence<int, OPS...>) {
  using Fn = void (*)(const View&, const View&, const View&);
  static constexpr Fn table[] = {&unary_grad_run<OPS>...};
  table[op](dx, x, dy);
}

template <class T>
void where_raw(const Layout<4>& L, const View& out, const View& cond, const View& a, const View& b) {
  T* o = static_cast<T*>(out.base);
  const uint8_t* c = static_cast<const uint8_t*>(cond.base);
  const T* x = static_cast<const T*>(a.base);
  const T* y = static_cast<const T*>(b.base);
  for_each_run(L, kGrainCheap, [&](int64_t n, const int64_t* off, const int64_t* st) {
    T* op = o + off[0];
    const uint8_t* cp = c + off[1];
    const T* xp = x + off[2];
    const T* yp = y + off[3];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; i++) op[i] = cp[i] ? xp[i] : yp[i];
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = cp[i * st[1]] ? xp[i * st[2]] : yp[i * st[3]];
    }
  });
}

void check_same(const char* k, const View& out, const View& v, const char* what) {
  if (!same_shape(out, v)) fail(k, "%s shape %s does not match the output %s", what, v.shape_str().c_str(), out.shape_str().c_str());
}

void no_f64(const char* k, const View& v) {
  if (v.dtype == DType::F64) fail(k, "f64 is not supported by the native backend (use f32)");
}

}  // namespace

void unary(int op, const View& out, const View& a) {
  if (op < 0 || op >= U_COUNT) fail("unary", "unknown op code %d", op);
  const char* k = kUnaryNames[op];
  check_same(k, out, a, "input");
  need_f32(k, "output", out);
  need_f32(k, "input", a);
  need_no_broadcast(k, "output", out);
  unary_dispatch(op, out, a, std::make_integer_sequence<int, U_COUNT>{});
}

void scalar(int op, const View& out, const View& a, double s) {
  if (op < 0 || op >= S_COUNT) fail("scalar", "unknown op code %d", op);
  const char* k = kScalarNames[op];
  check_same(k, out, a, "input");
  no_f64(k, out);
  no_f64(k, a);
  if (a.dtype == DType::Bool) fail(k, "input must not be bool");
  if (is_cmp_s(op) && out.dtype != DType::Bool) fail(k, "a comparison writes bool, got output dtype %s", dtype_name(out.dtype));
  if (!is_cmp_s(op) && out.dtype != DType::F32 && out.dtype != DType::I32)
    fail(k, "output must be f32 or i32, got %s", dtype_name(out.dtype));
  need_no_broadcast(k, "output", out);
  scalar_dispatch(op, out, a, s, std::make_integer_sequence<int, S_COUNT>{});
}

void binary(int op, const View& out, const View& a, const View& b) {
  if (op < 0 || op >= B_COUNT) fail("binary", "unknown op code %d", op);
  const char* k = kBinaryNames[op];
  check_same(k, out, a, "operand a");
  check_same(k, out, b, "operand b");
  no_f64(k, out);
  no_f64(k, a);
  no_f64(k, b);
  if (is_cmp_b(op) && out.dtype != DType::Bool) fail(k, "a comparison writes bool, got output dtype %s", dtype_name(out.dtype));
  if (!is_cmp_b(op) && out.dtype != DType::F32 && out.dtype != DType::I32)
    fail(k, "output must be f32 or i32, got %s", dtype_name(out.dtype));
  need_no_broadcast(k, "output", out);
  binary_dispatch(op, out, a, b, std::make_integer_sequence<int, B_COUNT>{});
}

void unary_grad(int op, const View& dx, const View& x, const View& dy) {
  if (op < 0 || op >= G_COUNT) fail("unaryGrad", "unknown op code %d", op);
  char k[48];
  std::snprintf(k, sizeof k, "%s grad", kUnaryGradNames[op]);
  check_same(k, dx, x, "x");
  check_same(k, dx, dy, "dy");
  need_f32(k, "dx", dx);
  need_f32(k, "x", x);
  need_f32(k, "dy", dy);
  need_no_broadcast(k, "dx", dx);
  unary_grad_dispatch(op, dx, x, dy, std::make_integer_sequence<int, G_COUNT>{});
}

void where(const View& out, const View& cond, const View& a, const View& b) {
  const char* k = "where";
  check_same(k, out, cond, "cond");
  check_same(k, out, a, "operand a");
  check_same(k, out, b, "operand b");
  need_dtype(k, "cond", cond, DType::Bool);
  no_f64(k, out);
  no_f64(k, a);
  no_f64(k, b);
  need_no_broadcast(k, "output", out);
  const View* vs[4] = {&out, &cond, &a, &b};
  Layout<4> L = make_layout<4>(k, vs);
  if (a.dtype == out.dtype && b.dtype == out.dtype) {
    switch (dtype_bytes(out.dtype)) {
      case 1: return where_raw<uint8_t>(L, out, cond, a, b);
      case 2: return where_raw<uint16_t>(L, out, cond, a, b);
      case 4: return where_raw<uint32_t>(L, out, cond, a, b);
      default: return where_raw<uint64_t>(L, out, cond, a, b);
    }
  }
  const uint8_t* c = static_cast<const uint8_t*>(cond.base);
  for_each_run(L, kGrainCheap, [&](int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; i++) {
      const double v = c[off[1] + i * st[1]] ? load_as_double(a.base, off[2] + i * st[2], a.dtype)
                                             : load_as_double(b.base, off[3] + i * st[3], b.dtype);
      store_from_double(out.base, off[0] + i * st[0], out.dtype, v);
    }
  });
}

// ---- the gated MLP activation: out = f(gate) · up and its gradients, one pass each way --------------
// f and f' as the unary and unaryGrad kernels form them (un<>, grad_f<>), every product an f32
// multiply, so the values are those of the composite (src/ops/composite/gated.ts) on this backend.
namespace {

template <int G>
constexpr int unary_of() {
  if constexpr (G == G_GELU) return U_GELU;
  else if constexpr (G == G_GELU_TANH) return U_GELU_TANH;
  else if constexpr (G == G_SILU) return U_SILU;
  else if constexpr (G == G_TANH) return U_TANH;
  else if constexpr (G == G_SIGMOID) return U_SIGMOID;
  else return U_RELU;
}

template <int G>
void gated_run(float* o, const float* g, const float* u, int64_t n) {
  parallel_blocks(n, G == G_RELU ? kGrainCheap : kGrainHeavy, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) o[i] = un<unary_of<G>()>(g[i]) * u[i];
  });
}

template <int G>
void gated_backward_run(float* dg, float* du, const float* g, const float* u, const float* dy, int64_t n) {
  parallel_blocks(n, G == G_RELU ? kGrainCheap : kGrainHeavy, [&](int64_t lo, int64_t hi) {
    if (dg) {
#pragma omp simd
      for (int64_t i = lo; i < hi; i++) dg[i] = (dy[i] * u[i]) * grad_f<G>(g[i]);
    }
    if (du) {
#pragma omp simd
      for (int64_t i = lo; i < hi; i++) du[i] = dy[i] * un<unary_of<G>()>(g[i]);
    }
  });
}

template <class F>
void with_gated_op(const char* k, int op, F&& f) {
  switch (op) {
    case G_GELU: return f(std::integral_constant<int, G_GELU>{});
    case G_GELU_TANH: return f(std::integral_constant<int, G_GELU_TANH>{});
    case G_SILU: return f(std::integral_constant<int, G_SILU>{});
    case G_TANH: return f(std::integral_constant<int, G_TANH>{});
    case G_SIGMOID: return f(std::integral_constant<int, G_SIGMOID>{});
    case G_RELU: return f(std::integral_constant<int, G_RELU>{});
  }
  fail(k, "unknown activation code %d", op);
}

const float* gated_in(const char* k, const char* what, const View& v, const View& ref) {
  need_f32_contig(k, what, v);
  need_same_shape(k, what, v, ref);
  return v.f();
}

}  // namespace

void gated_activation(int op, const View& out, const View& gate, const View& up) {
  const char* k = "gatedActivation";
  const float* g = gated_in(k, "gate", gate, gate);
  const float* u = gated_in(k, "up", up, gate);
  float* o = const_cast<float*>(gated_in(k, "output", out, gate));
  with_gated_op(k, op, [&](auto G) { gated_run<decltype(G)::value>(o, g, u, gate.numel()); });
}

void gated_activation_backward(int op, const View& dgate, const View& dup, const View& gate, const View& up,
                               const View& dy) {
  const char* k = "gatedActivationBackward";
  const float* g = gated_in(k, "gate", gate, gate);
  const float* u = gated_in(k, "up", up, gate);
  const float* d = gated_in(k, "dy", dy, gate);
  float* dg = dgate.present ? const_cast<float*>(gated_in(k, "dgate", dgate, gate)) : nullptr;
  float* du = dup.present ? const_cast<float*>(gated_in(k, "dup", dup, gate)) : nullptr;
  with_gated_op(k, op, [&](auto G) { gated_backward_run<decltype(G)::value>(dg, du, g, u, d, gate.numel()); });
}

// ---- an activation and its derivative in one pass: out = f(x), grad = f'(x) -------------------------
// The values of unary and unaryGrad (dy = 1) bit for bit; the GELUs share the costly part of the two.
namespace {

template <int G>
VERA_INLINE void value_and_grad(float x, float& y, float& g) {
  if constexpr (G == G_GELU_TANH) vgelu_tanh_both(x, y, g);
  else if constexpr (G == G_GELU) gelu_erf_both(x, y, g);
  else {
    y = un<unary_of<G>()>(x);
    g = grad_f<G>(x);
  }
}

template <int G>
void unary_with_grad_run(float* o, float* g, const float* x, int64_t n) {
  parallel_blocks(n, G == G_RELU ? kGrainCheap : kGrainHeavy, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) value_and_grad<G>(x[i], o[i], g[i]);
  });
}

}  // namespace

void unary_with_grad(int op, const View& out, const View& grad, const View& x) {
  const char* k = "unaryWithGrad";
  const float* xp = gated_in(k, "x", x, x);
  float* o = const_cast<float*>(gated_in(k, "output", out, x));
  float* g = const_cast<float*>(gated_in(k, "grad", grad, x));
  with_gated_op(k, op, [&](auto G) { unary_with_grad_run<decltype(G)::value>(o, g, xp, x.numel()); });
}

}  // namespace vera
