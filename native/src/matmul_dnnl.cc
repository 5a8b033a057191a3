// oneDNN's matmul primitive for the GEMM paths: out (+)= a·b on f32 or bf16 operands (f32 accumulation,
// f32 out), each used in place when it has the element type and a row- or column-major layout (any
// leading dimension), else converted/packed into a per-thread scratch. oneDNN picks its kernel at run
// time (brgemm on AMX, AVX-512 BF16, AVX-512 or AVX2; matmul_primitive_impl() says which); on this
// project's 2-core AVX-512 machines its f32 brgemm beats dnnl_sgemm by 1.1-2.2× (most at 128 rows), and
// its bf16 brgemm runs at about twice the f32 rate. Primitives are cached per shape, layout and thread
// count, since creating one costs 0.1-4 ms and it splits work by the threads it saw when made.
#include "matmul_dnnl.h"

#include <dnnl.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "gemm_pack.h"

namespace vera {
namespace {

// A plain (row- or column-major) layout oneDNN reads in place: canonical strides, or false.
bool plain_layout(int64_t rows, int64_t cols, int64_t& sr, int64_t& sc) {
  if ((sc == 1 || cols == 1) && (rows == 1 || sr >= cols)) {
    sc = 1;
    if (rows == 1) sr = std::max<int64_t>(cols, 1);
    return true;
  }
  if ((sr == 1 || rows == 1) && (cols == 1 || sc >= rows)) {
    sr = 1;
    if (cols == 1) sc = std::max<int64_t>(rows, 1);
    return true;
  }
  return false;
}

// An operand as the primitive reads it: elements at `ptr` (bf16 or f32), dims [nb, rows, cols]
// (nb = 1: shared by every batch element) with strides (sb, sr, sc).
struct Matrix {
  const void* ptr = nullptr;
  int64_t nb = 1, sb = 0, sr = 0, sc = 0;
};

// Uses `v` in place when it already holds the GEMM's element type in a plain layout, else converts or
// packs it into `scratch` (dense row-major). An `a` broadcast over the batch (stride 0) is packed once
// per batch element, since oneDNN broadcasts only b.
Matrix operand(const View& v, int64_t bt, int64_t rows, int64_t cols, bool may_share, bool bf16,
               std::vector<float>& scratch) {
  Matrix o;
  const bool shared = bt == 1 || (v.strides[0] == 0 && may_share);
  o.nb = shared ? 1 : bt;
  o.sr = v.strides[1];
  o.sc = v.strides[2];
  const DType want = bf16 ? DType::BF16 : DType::F32;
  if (v.dtype == want && (shared || v.strides[0] != 0) && plain_layout(rows, cols, o.sr, o.sc)) {
    o.ptr = bf16 ? static_cast<const void*>(v.ptr<uint16_t>()) : static_cast<const void*>(v.f());
    o.sb = shared ? rows * cols : v.strides[0];
    return o;
  }
  const int64_t elems = rows * cols;
  // bf16 scratch: two per float; 16 floats more so the data can start on a 64-byte line (AMX and
  // AVX-512 loads that split cache lines cost oneDNN's bf16 kernels a third of their speed).
  scratch.resize((size_t)((o.nb * elems + 1) / (bf16 ? 2 : 1)) + 16);
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t(63));
  if (bf16) {
    uint16_t* dst = reinterpret_cast<uint16_t*>(base);
    each_rows(o.nb, rows, cols, [&](int64_t p, int64_t r0, int64_t r1) { pack_bf16(dst + p * elems, v, p, r0, r1, cols); });
  } else {
    float* dst = base;
    each_rows(o.nb, rows, cols, [&](int64_t p, int64_t r0, int64_t r1) { pack_f32(dst + p * elems, v, p, r0, r1, cols); });
  }
  o.ptr = base;
  o.sb = elems;
  o.sr = cols;
  o.sc = 1;
  return o;
}

struct Primitive {
  dnnl::matmul prim;
  dnnl::memory::desc src, wei, dst;
  bool reference = false;  // oneDNN had only its slow reference implementation
};

dnnl::engine& engine() {
  thread_local dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// The primitive for these dims/strides (cached; at most kCacheSize entries, then the cache restarts).
const Primitive& primitive(const std::vector<int64_t>& key, const dnnl::memory::desc& src,
                           const dnnl::memory::desc& wei, const dnnl::memory::desc& dst, bool accumulate) {
  constexpr size_t kCacheSize = 512;
  thread_local std::map<std::vector<int64_t>, Primitive> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kCacheSize) cache.clear();
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, engine());
  Primitive p{dnnl::matmul(pd), src, wei, dst, std::strncmp(pd.impl_info_str(), "ref", 3) == 0};
  return cache.emplace(key, std::move(p)).first->second;
}

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

}  // namespace

bool matmul_primitive(const View& out, const View& a, const View& b, bool accumulate, bool bf16) {
  const int64_t bt = a.shape[0], m = a.shape[1], kk = a.shape[2], n = b.shape[2];
  thread_local std::vector<float> scratch_a, scratch_b;
  const Matrix A = operand(a, bt, m, kk, false, bf16, scratch_a);
  const Matrix B = operand(b, bt, kk, n, true, bf16, scratch_b);
  const dt in = bf16 ? dt::bf16 : dt::f32;
  dnnl::memory::desc src, wei, dst;
  // A weight shared by the batch, and a's batch elements one after another: one [bt·m, k] product.
  if (B.nb == 1 && (A.nb == 1 || (A.sc == 1 && A.sb == m * A.sr))) {
    src = dnnl::memory::desc(dims{A.nb * m, kk}, in, dims{A.sr, A.sc});
    wei = dnnl::memory::desc(dims{kk, n}, in, dims{B.sr, B.sc});
    dst = dnnl::memory::desc(dims{bt * m, n}, dt::f32, dims{n, 1});
  } else {
    src = dnnl::memory::desc(dims{A.nb, m, kk}, in, dims{A.sb, A.sr, A.sc});
    wei = dnnl::memory::desc(dims{B.nb, kk, n}, in, dims{B.sb, B.sr, B.sc});
    dst = dnnl::memory::desc(dims{bt, m, n}, dt::f32, dims{m * n, n, 1});
  }
  // oneDNN splits the work among the threads it sees when a primitive is made: the count is in the key.
  std::vector<int64_t> key{accumulate ? 1 : 0, max_threads(), bf16 ? 1 : 0};
  for (const dnnl::memory::desc* d : {&src, &wei}) {
    const dims ds = d->dims();
    key.insert(key.end(), ds.begin(), ds.end());
    for (int i = 0; i < (int)ds.size(); i++) key.push_back(d->data.format_desc.blocking.strides[i]);
  }
  const Primitive& p = primitive(key, src, wei, dst, accumulate);
  if (p.reference) return false;
  thread_local dnnl::stream stream(engine());
  dnnl::memory ms(p.src, engine(), const_cast<void*>(A.ptr));
  dnnl::memory mw(p.wei, engine(), const_cast<void*>(B.ptr));
  dnnl::memory md(p.dst, engine(), out.f());
  p.prim.execute(stream, {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}});
  stream.wait();
  return true;
}

std::string matmul_primitive_impl(bool bf16) {
  try {
    const dt in = bf16 ? dt::bf16 : dt::f32;
    const dnnl::memory::desc src(dims{64, 64}, in, dims{64, 1});
    const dnnl::memory::desc dst(dims{64, 64}, dt::f32, dims{64, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, src, dst), engine());
    return pd.impl_info_str();
  } catch (const dnnl::error& e) {
    return std::string("unavailable: ") + e.what();
  }
}

}  // namespace vera
