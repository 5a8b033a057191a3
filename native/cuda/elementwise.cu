// Elementwise kernels: unary, scalar, binary (broadcast through 0 strides), the fused activation
// derivatives and where. Each element is computed in double and stored with the js backend's writer
// semantics, so results equal the reference's f64 arithmetic rounded once (these kernels are memory-
// bound: the double arithmetic is hidden behind the loads on the GPUs we target). Float views may be
// f32 or bf16 in any mix (bf16 activations): typed kernels over the element types of out and inputs
// widen bf16 loads exactly and store (float)(double result), rounded to bf16 where out is bf16 — the
// f32 kernel's value rounded once, as the widening fallback defines it.
#include "activations.cuh"
#include "bf16.cuh"
#include "kernels.h"
#include "strided.cuh"

namespace vera {
namespace {

__device__ inline double js_max(double a, double b) {
  if (a != a || b != b) return NAN;
  if (a == b) return signbit(a) ? b : a;  // +0 > −0
  return a > b ? a : b;
}
__device__ inline double js_min(double a, double b) {
  if (a != a || b != b) return NAN;
  if (a == b) return signbit(a) ? a : b;
  return a < b ? a : b;
}
__device__ inline double js_pow(double x, double y) {
  if (y != y) return NAN;                              // C: pow(1, NaN) = 1
  if (isinf(y) && fabs(x) == 1.0) return NAN;          // C: pow(−1, ±∞) = 1
  return pow(x, y);
}
__device__ double unary_op(int op, double x) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_RSQRT: return 1 / sqrt(x);
    case U_ABS: return fabs(x);
    case U_SIGN: return x > 0 ? 1.0 : x < 0 ? -1.0 : x;
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_TANH: return tanh(x);
    case U_SIGMOID: return cu::sigmoid(x);
    case U_RELU: return x > 0 ? x : (x != x ? x : 0.0);
    case U_GELU: return cu::gelu(x);
    case U_GELU_TANH: return cu::gelu_tanh(x);
    case U_SILU: return x * cu::sigmoid(x);
    case U_SQUARE: return x * x;
    default: return 1 / x;
  }
}

__device__ double scalar_op(int op, double x, double s) {
  switch (op) {
    case S_ADD: return x + s;
    case S_MUL: return x * s;
    case S_POW: return js_pow(x, s);
    case S_RSUB: return s - x;
    case S_MAX: return x != x ? x : js_max(x, s);
    case S_MIN: return x != x ? x : js_min(x, s);
    case S_EQ: return x == s;
    case S_NE: return x != s;
    case S_LT: return x < s;
    case S_LE: return x <= s;
    case S_GT: return x > s;
    default: return x >= s;
  }
}

__device__ double binary_op(int op, double x, double y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return js_pow(x, y);
    case B_MAX: return js_max(x, y);
    case B_MIN: return js_min(x, y);
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    default: return x >= y;
  }
}

struct Operand {
  const void* p;
  DType d;
};

// Float views (f32 or bf16 each, every activation of a model): typed loads, no dtype switch.
template <class TO, class TA>
__global__ void unary_kernel(Layout<2> L, int op, TO* o, const TA* a) {
  using namespace cu;
  VERA_FOR_EACH(L, 2, off, { st(o, off[0], (float)unary_op(op, ld(a, off[1]))); })
}

template <class TO, class TA>
__global__ void scalar_float_kernel(Layout<2> L, int op, TO* o, const TA* a, double s) {
  using namespace cu;
  VERA_FOR_EACH(L, 2, off, { st(o, off[0], (float)scalar_op(op, ld(a, off[1]), s)); })
}

__global__ void scalar_kernel(Layout<2> L, int op, void* o, DType od, Operand a, double s) {
  using namespace cu;
  VERA_FOR_EACH(L, 2, off, { store_from_double(o, off[0], od, scalar_op(op, load_as_double(a.p, off[1], a.d), s)); })
}

template <class TO, class TA, class TB>
__global__ void binary_float_kernel(Layout<3> L, int op, TO* o, const TA* a, const TB* b) {
  using namespace cu;
  VERA_FOR_EACH(L, 3, off, { st(o, off[0], (float)binary_op(op, ld(a, off[1]), ld(b, off[2]))); })
}

__global__ void binary_kernel(Layout<3> L, int op, void* o, DType od, Operand a, Operand b) {
  using namespace cu;
  VERA_FOR_EACH(L, 3, off, {
    store_from_double(o, off[0], od, binary_op(op, load_as_double(a.p, off[1], a.d), load_as_double(b.p, off[2], b.d)));
  })
}

template <class TO, class TX, class TD>
__global__ void unary_grad_kernel(Layout<3> L, int op, TO* dx, const TX* x, const TD* dy) {
  using namespace cu;
  VERA_FOR_EACH(L, 3, off, { st(dx, off[0], (float)((double)ld(dy, off[2]) * cu::grad_op(op, ld(x, off[1])))); })
}

__global__ void where_kernel(Layout<4> L, void* o, DType od, const uint8_t* c, Operand a, Operand b) {
  using namespace cu;
  VERA_FOR_EACH(L, 4, off, {
    const double v = c[off[1]] ? load_as_double(a.p, off[2], a.d) : load_as_double(b.p, off[3], b.d);
    store_from_double(o, off[0], od, v);
  })
}

// Dense fast paths: when every view of a call is contiguous (its layout one unit-stride dimension),
// each thread takes kUnroll elements a block apart and loads them all before computing, so several
// loads are in flight per thread (one per thread at a time left these kernels well below the memory
// bandwidth). Same arithmetic as the strided kernels above.
constexpr int kUnroll = 4;

template <int K>
bool dense(const Layout<K>& L) {
  if (L.ndim != 1) return false;
  for (int k = 0; k < K; k++)
    if (L.st[k][0] != 1) return false;
  return true;
}

// The unary ops cheap enough for the dense path: the transcendental ones (computed in double, as the
// js reference) are bound by the FP64 units, and holding kUnroll of them in flight per thread made
// GPT-2's GELU slower than one element a thread (H100, 2026-12-07: the GPT-2-medium step +12%).
bool cheap_unary(int op) { return op == U_NEG || op == U_ABS || op == U_SIGN || op == U_RELU || op == U_SQUARE; }

template <int K>
unsigned dense_grid(const Layout<K>& L) {
  return cu::grid_for((L.numel + kUnroll - 1) / kUnroll);
}

#define VERA_DENSE_LOOP(n, BODY_LOAD, BODY_STORE)                                                          \
  const int64_t vera_step = (int64_t)gridDim.x * blockDim.x * kUnroll;                                      \
  for (int64_t vera_b = (int64_t)blockIdx.x * blockDim.x * kUnroll + threadIdx.x; vera_b < (n);            \
       vera_b += vera_step) {                                                                               \
    _Pragma("unroll") for (int j = 0; j < kUnroll; j++) {                                                   \
      const int64_t i = vera_b + (int64_t)j * blockDim.x;                                                   \
      if (i < (n)) { BODY_LOAD }                                                                            \
    }                                                                                                       \
    _Pragma("unroll") for (int j = 0; j < kUnroll; j++) {                                                   \
      const int64_t i = vera_b + (int64_t)j * blockDim.x;                                                   \
      if (i < (n)) { BODY_STORE }                                                                           \
    }                                                                                                       \
  }

template <class TO, class TA>
__global__ void unary_dense_kernel(int64_t n, int op, TO* __restrict__ o, const TA* __restrict__ a) {
  using namespace cu;
  float x[kUnroll];
  VERA_DENSE_LOOP(n, x[j] = ld(a, i);, st(o, i, (float)unary_op(op, x[j]));)
}

template <class TO, class TA>
__global__ void scalar_dense_kernel(int64_t n, int op, TO* __restrict__ o, const TA* __restrict__ a, double s) {
  using namespace cu;
  float x[kUnroll];
  VERA_DENSE_LOOP(n, x[j] = ld(a, i);, st(o, i, (float)scalar_op(op, x[j], s));)
}

template <class TO, class TA, class TB>
__global__ void binary_dense_kernel(int64_t n, int op, TO* __restrict__ o, const TA* __restrict__ a,
                                    const TB* __restrict__ b) {
  using namespace cu;
  float x[kUnroll], y[kUnroll];
  VERA_DENSE_LOOP(n, x[j] = ld(a, i); y[j] = ld(b, i);, st(o, i, (float)binary_op(op, x[j], y[j]));)
}

template <class TO, class TX, class TD>
__global__ void unary_grad_dense_kernel(int64_t n, int op, TO* __restrict__ dx, const TX* __restrict__ x,
                                        const TD* __restrict__ dy) {
  using namespace cu;
  float xv[kUnroll], g[kUnroll];
  VERA_DENSE_LOOP(n, xv[j] = ld(x, i); g[j] = ld(dy, i);, st(dx, i, (float)((double)g[j] * cu::grad_op(op, xv[j])));)
}

// All views bf16 at 16-byte aligned addresses (the activations of a bf16 model): eight elements a
// thread per access (bf16.cuh ld8/st8), the same arithmetic; the dense kernels above take the tail.
__global__ void binary_vec8_kernel(int64_t n8, int op, cu::bf16_t* o, const cu::bf16_t* a, const cu::bf16_t* b) {
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n8; c += (int64_t)gridDim.x * blockDim.x) {
    float x[8], y[8];
    cu::ld8(a + 8 * c, x);
    cu::ld8(b + 8 * c, y);
#pragma unroll
    for (int j = 0; j < 8; j++) x[j] = (float)binary_op(op, x[j], y[j]);
    cu::st8(o + 8 * c, x);
  }
}

__global__ void scalar_vec8_kernel(int64_t n8, int op, cu::bf16_t* o, const cu::bf16_t* a, double s) {
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n8; c += (int64_t)gridDim.x * blockDim.x) {
    float x[8];
    cu::ld8(a + 8 * c, x);
#pragma unroll
    for (int j = 0; j < 8; j++) x[j] = (float)scalar_op(op, x[j], s);
    cu::st8(o + 8 * c, x);
  }
}

// The number of leading elements a vec8 kernel takes for these (dense) pointers: a multiple of 8, or 0
// when one of them is not 16-byte aligned or not bf16.
template <class... P>
int64_t vec8_count(int64_t n, bool all_bf16, const P*... ps) {
  if (!all_bf16 || n < 8) return 0;
  for (const void* p : {static_cast<const void*>(ps)...})
    if (!cu::aligned16(p)) return 0;
  return n / 8 * 8;
}

void check_same(const char* k, const View& out, const View& v, const char* what) {
  if (!same_shape(out, v)) fail(k, "%s shape %s does not match the output %s", what, v.shape_str().c_str(), out.shape_str().c_str());
}

void no_f64(const char* k, const View& v) {
  if (v.dtype == DType::F64) fail(k, "f64 is not supported by the cuda backend (use f32 or bf16)");
}

bool is_cmp_s(int op) { return op >= S_EQ; }
bool is_cmp_b(int op) { return op >= B_EQ; }

template <int K>
unsigned grid(const Layout<K>& L) {
  return cu::grid_for(L.numel);
}

}  // namespace

void unary(int op, const View& out, const View& a) {
  if (op < 0 || op >= U_COUNT) fail("unary", "unknown op code %d", op);
  const char* k = kUnaryNames[op];
  check_same(k, out, a, "input");
  need_float(k, "output", out);
  need_float(k, "input", a);
  need_no_broadcast(k, "output", out);
  if (out.numel() == 0) return;
  const View* vs[2] = {&out, &a};
  const Layout<2> L = make_layout<2>(k, vs);
  cu::with_float(out.dtype, [&](auto to) {
    cu::with_float(a.dtype, [&](auto ta) {
      using TO = decltype(to);
      using TA = decltype(ta);
      if (dense(L) && cheap_unary(op))
        unary_dense_kernel<TO, TA><<<dense_grid(L), cu::kThreads, 0, cu::stream()>>>(
            L.numel, op, static_cast<TO*>(out.base) + L.off[0], static_cast<const TA*>(a.base) + L.off[1]);
      else
        unary_kernel<TO, TA><<<grid(L), cu::kThreads, 0, cu::stream()>>>(L, op, static_cast<TO*>(out.base), static_cast<const TA*>(a.base));
    });
  });
  cu::launched(k);
}

void scalar(int op, const View& out, const View& a, double s) {
  if (op < 0 || op >= S_COUNT) fail("scalar", "unknown op code %d", op);
  const char* k = kScalarNames[op];
  check_same(k, out, a, "input");
  no_f64(k, out);
  no_f64(k, a);
  if (a.dtype == DType::Bool) fail(k, "input must not be bool");
  if (is_cmp_s(op) && out.dtype != DType::Bool) fail(k, "a comparison writes bool, got output dtype %s", dtype_name(out.dtype));
  if (!is_cmp_s(op) && out.dtype != DType::F32 && out.dtype != DType::BF16 && out.dtype != DType::I32)
    fail(k, "output must be f32, bf16 or i32, got %s", dtype_name(out.dtype));
  need_no_broadcast(k, "output", out);
  if (out.numel() == 0) return;
  const View* vs[2] = {&out, &a};
  const Layout<2> L = make_layout<2>(k, vs);
  if (cu::is_float(out.dtype) && cu::is_float(a.dtype)) {
    cu::with_float(out.dtype, [&](auto to) {
      cu::with_float(a.dtype, [&](auto ta) {
        using TO = decltype(to);
        using TA = decltype(ta);
        if (dense(L)) {
          TO* po = static_cast<TO*>(out.base) + L.off[0];
          const TA* pa = static_cast<const TA*>(a.base) + L.off[1];
          const int64_t v8 = vec8_count(L.numel, cu::is_bf16<TO>() && cu::is_bf16<TA>(), po, pa);
          if (v8 > 0)
            scalar_vec8_kernel<<<cu::grid_for(v8 / 8), cu::kThreads, 0, cu::stream()>>>(
                v8 / 8, op, reinterpret_cast<cu::bf16_t*>(po), reinterpret_cast<const cu::bf16_t*>(pa), s);
          if (v8 < L.numel)
            scalar_dense_kernel<TO, TA><<<cu::grid_for((L.numel - v8 + kUnroll - 1) / kUnroll), cu::kThreads, 0, cu::stream()>>>(
                L.numel - v8, op, po + v8, pa + v8, s);
        } else
          scalar_float_kernel<TO, TA><<<grid(L), cu::kThreads, 0, cu::stream()>>>(L, op, static_cast<TO*>(out.base),
                                                                                 static_cast<const TA*>(a.base), s);
      });
    });
  } else {
    scalar_kernel<<<grid(L), cu::kThreads, 0, cu::stream()>>>(L, op, out.base, out.dtype, Operand{a.base, a.dtype}, s);
  }
  cu::launched(k);
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
  if (!is_cmp_b(op) && out.dtype != DType::F32 && out.dtype != DType::BF16 && out.dtype != DType::I32)
    fail(k, "output must be f32, bf16 or i32, got %s", dtype_name(out.dtype));
  need_no_broadcast(k, "output", out);
  if (out.numel() == 0) return;
  const View* vs[3] = {&out, &a, &b};
  const Layout<3> L = make_layout<3>(k, vs);
  if (cu::is_float(out.dtype) && cu::is_float(a.dtype) && cu::is_float(b.dtype)) {
    cu::with_float(out.dtype, [&](auto to) {
      cu::with_float(a.dtype, [&](auto ta) {
        cu::with_float(b.dtype, [&](auto tb) {
          using TO = decltype(to);
          using TA = decltype(ta);
          using TB = decltype(tb);
          if (dense(L)) {
            TO* po = static_cast<TO*>(out.base) + L.off[0];
            const TA* pa = static_cast<const TA*>(a.base) + L.off[1];
            const TB* pb = static_cast<const TB*>(b.base) + L.off[2];
            const int64_t v8 = vec8_count(L.numel, cu::is_bf16<TO>() && cu::is_bf16<TA>() && cu::is_bf16<TB>(), po, pa, pb);
            if (v8 > 0)
              binary_vec8_kernel<<<cu::grid_for(v8 / 8), cu::kThreads, 0, cu::stream()>>>(
                  v8 / 8, op, reinterpret_cast<cu::bf16_t*>(po), reinterpret_cast<const cu::bf16_t*>(pa),
                  reinterpret_cast<const cu::bf16_t*>(pb));
            if (v8 < L.numel)
              binary_dense_kernel<TO, TA, TB><<<cu::grid_for((L.numel - v8 + kUnroll - 1) / kUnroll), cu::kThreads, 0,
                                                cu::stream()>>>(L.numel - v8, op, po + v8, pa + v8, pb + v8);
          } else
            binary_float_kernel<TO, TA, TB><<<grid(L), cu::kThreads, 0, cu::stream()>>>(
                L, op, static_cast<TO*>(out.base), static_cast<const TA*>(a.base), static_cast<const TB*>(b.base));
        });
      });
    });
  } else {
    binary_kernel<<<grid(L), cu::kThreads, 0, cu::stream()>>>(L, op, out.base, out.dtype, Operand{a.base, a.dtype},
                                                               Operand{b.base, b.dtype});
  }
  cu::launched(k);
}

void unary_grad(int op, const View& dx, const View& x, const View& dy) {
  if (op < 0 || op >= G_COUNT) fail("unaryGrad", "unknown op code %d", op);
  char k[48];
  std::snprintf(k, sizeof k, "%s grad", kUnaryGradNames[op]);
  check_same(k, dx, x, "x");
  check_same(k, dx, dy, "dy");
  need_float(k, "dx", dx);
  need_float(k, "x", x);
  need_float(k, "dy", dy);
  need_no_broadcast(k, "dx", dx);
  if (dx.numel() == 0) return;
  const View* vs[3] = {&dx, &x, &dy};
  const Layout<3> L = make_layout<3>(k, vs);
  cu::with_float(dx.dtype, [&](auto to) {
    cu::with_float(x.dtype, [&](auto tx) {
      cu::with_float(dy.dtype, [&](auto td) {
        using TO = decltype(to);
        using TX = decltype(tx);
        using TD = decltype(td);
        if (dense(L) && op == G_RELU)
          unary_grad_dense_kernel<TO, TX, TD><<<dense_grid(L), cu::kThreads, 0, cu::stream()>>>(
              L.numel, op, static_cast<TO*>(dx.base) + L.off[0], static_cast<const TX*>(x.base) + L.off[1],
              static_cast<const TD*>(dy.base) + L.off[2]);
        else
          unary_grad_kernel<TO, TX, TD><<<grid(L), cu::kThreads, 0, cu::stream()>>>(
              L, op, static_cast<TO*>(dx.base), static_cast<const TX*>(x.base), static_cast<const TD*>(dy.base));
      });
    });
  });
  cu::launched(k);
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
  if (out.numel() == 0) return;
  const View* vs[4] = {&out, &cond, &a, &b};
  const Layout<4> L = make_layout<4>(k, vs);
  where_kernel<<<grid(L), cu::kThreads, 0, cu::stream()>>>(L, out.base, out.dtype, static_cast<const uint8_t*>(cond.base),
                                                           Operand{a.base, a.dtype}, Operand{b.base, b.dtype});
  cu::launched(k);
}

}  // namespace vera
