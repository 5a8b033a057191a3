// N-API glue of the vera_native addon: buffer handles (externals with finalizers), the shared
// descriptor through which the TS binding passes view metadata and scalars, argument validation,
// and one exported function per kernel. No kernel math lives here.
#include <node_api.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "buffers.h"
#include "common.h"
#include "kernels.h"

using namespace vera;

namespace {

// ---- the shared descriptor ------------------------------------------------------------------------
// A Float64Array owned by the addon. Slots [0, kScalars) carry a call's scalars (op code first);
// views follow as [dtype, offset, ndim, shape..., strides...] (dtype −1 for an absent optional
// view). Buffers travel as the call's arguments, in view order. Doubles hold integers up to 2^53.
constexpr int kScalars = 8;
constexpr int kDescLen = 1024;

struct Instance {
  double* desc = nullptr;
  napi_ref desc_ref = nullptr;
};

Instance* instance(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

const char* const kDTypeCodes[kNumDTypes] = {"f32", "f64", "f16", "bf16", "i32", "i64", "bool"};

// ---- errors -----------------------------------------------------------------------------------------

void throw_js(napi_env env, const char* msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, msg);
}

constexpr double kMaxSafe = 9007199254740992.0;  // 2^53

bool is_index(double x) { return x >= 0 && x <= kMaxSafe && std::floor(x) == x; }

// ---- argument reader --------------------------------------------------------------------------------

struct Args {
  napi_env env;
  const char* kernel;
  const double* d;
  napi_value argv[12];
  size_t argc = 12;
  size_t next_arg = 0;
  int pos = kScalars;

  double scalar(int i) const { return d[i]; }
  int op() const {
    const double x = d[0];
    if (!(x >= 0 && x < 1024 && std::floor(x) == x)) fail(kernel, "invalid op code");
    return (int)x;
  }

  Block* block(napi_value v, const char* what) {
    void* p = nullptr;
    if (napi_get_value_external(env, v, &p) != napi_ok || p == nullptr)
      fail(kernel, "%s is not a native backend buffer", what);
    Block* b = static_cast<Block*>(p);
    if (b->data == nullptr) fail(kernel, "%s buffer was used after free", what);
    return b;
  }

  napi_value next(const char* what) {
    if (next_arg >= argc) fail(kernel, "missing buffer argument for %s", what);
    return argv[next_arg++];
  }

  // Reads the next view and checks that it lies inside its buffer.
  View view(const char* what, bool optional = false) {
    View v;
    if (pos + 3 > kDescLen) fail(kernel, "descriptor overflow at %s", what);
    const double code = d[pos];
    napi_value arg = next(what);
    if (code == -1) {
      if (!optional) fail(kernel, "%s is required", what);
      pos += 1;
      return v;
    }
    if (!(code >= 0 && code < kNumDTypes && std::floor(code) == code)) fail(kernel, "%s has an invalid dtype code", what);
    v.dtype = (DType)(int)code;
    const double off = d[pos + 1];
    const double nd = d[pos + 2];
    if (!is_index(off)) fail(kernel, "%s has an invalid offset %g", what, off);
    if (!(nd >= 0 && nd <= kMaxDims && std::floor(nd) == nd)) fail(kernel, "%s has rank %g (at most %d supported)", what, nd, kMaxDims);
    v.ndim = (int)nd;
    if (pos + 3 + 2 * v.ndim > kDescLen) fail(kernel, "descriptor overflow at %s", what);
    v.offset = (int64_t)off;
    bool empty = false;
    for (int i = 0; i < v.ndim; i++) {
      const double s = d[pos + 3 + i];
      const double st = d[pos + 3 + v.ndim + i];
      if (!is_index(s)) fail(kernel, "%s has an invalid size %g on axis %d", what, s, i);
      if (!is_index(st)) {
        if (st < 0) fail(kernel, "%s has a negative stride %g on axis %d (not supported)", what, st, i);
        fail(kernel, "%s has an invalid stride %g on axis %d", what, st, i);
      }
      v.shape[i] = (int64_t)s;
      v.strides[i] = (int64_t)st;
      if (v.shape[i] == 0) empty = true;
    }
    pos += 3 + 2 * v.ndim;
    Block* b = block(arg, what);
    if (b->dtype != (int)v.dtype)
      fail(kernel, "%s is a %s view of a %s buffer", what, dtype_name(v.dtype), dtype_name((DType)b->dtype));
    const int64_t cap = (int64_t)(b->bytes / dtype_bytes(v.dtype));
    if (!empty) {
      // Highest element index, in 128 bits so that no product can overflow.
      __int128 last = v.offset;
      __int128 count = 1;
      for (int i = 0; i < v.ndim; i++) {
        last += (__int128)(v.shape[i] - 1) * v.strides[i];
        count *= v.shape[i];
        if (count > ((__int128)1 << 53)) fail(kernel, "%s has too many elements", what);
      }
      if (last >= cap)
        fail(kernel, "%s of shape %s at offset %lld exceeds its buffer (element %lld of %lld)", what, v.shape_str().c_str(),
             (long long)v.offset, (long long)last, (long long)cap);
    }
    v.base = b->data;
    v.present = true;
    return v;
  }
};

template <class F>
napi_value guarded(napi_env env, napi_callback_info info, const char* kernel, F&& body) {
  Args a;
  a.env = env;
  a.kernel = kernel;
  a.d = instance(env)->desc;
  try {
    if (napi_get_cb_info(env, info, &a.argc, a.argv, nullptr, nullptr) != napi_ok) fail(kernel, "bad call");
    if (a.argc > 12) a.argc = 12;
    return body(a);
  } catch (const Error& e) {
    throw_js(env, e.what());
  } catch (const std::bad_alloc&) {
    std::string m = std::string("[native ") + kernel + "] out of memory";
    throw_js(env, m.c_str());
  } catch (const std::exception& e) {
    std::string m = std::string("[native ") + kernel + "] internal error: " + e.what();
    throw_js(env, m.c_str());
  } catch (...) {
    std::string m = std::string("[native ") + kernel + "] internal error";
    throw_js(env, m.c_str());
  }
  return nullptr;
}

// KERNEL(Name, "jsName", { body using Args& a; returns a napi_value or nullptr })
#define KERNEL(NAME, JSNAME, ...)                                                \
  napi_value NAME(napi_env env, napi_callback_info info) {                      \
    return guarded(env, info, JSNAME, [&](Args & a) -> napi_value __VA_ARGS__); \
  }

// ---- buffers -------------------------------------------------------------------------------------

// V8 is told how much memory the allocator holds from the system (live and cached blocks), not how
// many bytes are live: in a training loop the cache serves every step after the first, so the
// reported amount stays flat and V8 runs no extra collections, while memory that really grows (a
// leak, new shapes) is reported in full and raises GC pressure as it should.
int64_t g_reported = 0;

void sync_external_memory(napi_env env) {
  const int64_t system = (int64_t)cache_stats().system;
  if (system == g_reported) return;
  int64_t ignored;
  napi_adjust_external_memory(env, system - g_reported, &ignored);
  g_reported = system;
}

void finalize_block(napi_env env, void* data, void*) {
  Block* b = static_cast<Block*>(data);
  if (b->data) {
    cache_free(b->data, b->capacity, b->bytes);
    sync_external_memory(env);
    b->data = nullptr;
  }
  delete b;
}

double arg_number(Args& a, size_t i, const char* what) {
  double x = 0;
  if (i >= a.argc || napi_get_value_double(a.env, a.argv[i], &x) != napi_ok) fail(a.kernel, "%s must be a number", what);
  return x;
}

// alloc(dtypeCode, numel) -> external
KERNEL(Alloc, "alloc", {
  const double code = arg_number(a, 0, "dtype");
  const double n = arg_number(a, 1, "numel");
  if (!(code >= 0 && code < kNumDTypes && std::floor(code) == code)) fail(a.kernel, "invalid dtype code");
  const DType dt = (DType)(int)code;
  if (dt == DType::F64) fail(a.kernel, "f64 is not supported by the native backend (use f32)");
  if (!is_index(n)) fail(a.kernel, "invalid element count %g", n);
  const size_t bytes = (size_t)n * dtype_bytes(dt);
  Block* b = new Block();
  b->bytes = bytes;
  b->dtype = (int)dt;
  try {
    b->data = cache_alloc(bytes, b->capacity);
  } catch (...) {
    delete b;
    throw;
  }
  napi_value ext;
  if (napi_create_external(a.env, b, finalize_block, nullptr, &ext) != napi_ok) {
    cache_free(b->data, b->capacity, b->bytes);
    delete b;
    fail(a.kernel, "could not create the buffer handle");
  }
  sync_external_memory(a.env);
  return ext;
})

// free(external): idempotent; the Block stays until the handle is collected.
KERNEL(Free, "free", {
  void* p = nullptr;
  if (a.argc < 1 || napi_get_value_external(a.env, a.argv[0], &p) != napi_ok || !p) fail(a.kernel, "not a native backend buffer");
  Block* b = static_cast<Block*>(p);
  if (b->data) {
    cache_free(b->data, b->capacity, b->bytes);
    b->data = nullptr;
    sync_external_memory(a.env);
  }
  return nullptr;
})

bool typed_array_matches(DType d, napi_typedarray_type t) {
  switch (d) {
    case DType::F32: return t == napi_float32_array;
    case DType::F64: return t == napi_float64_array;
    case DType::F16:
    case DType::BF16: return t == napi_uint16_array;
    case DType::I32: return t == napi_int32_array;
    case DType::I64: return t == napi_bigint64_array;
    case DType::Bool: return t == napi_uint8_array;
  }
  return false;
}

// upload(external, dtypeCode, offset, typedArray)
KERNEL(Upload, "upload", {
  if (a.argc < 4) fail(a.kernel, "expected (buffer, dtype, offset, data)");
  Block* b = a.block(a.argv[0], "destination");
  const double code = arg_number(a, 1, "dtype");
  const double off = arg_number(a, 2, "offset");
  if (code != b->dtype) fail(a.kernel, "dtype does not match the buffer's %s", dtype_name((DType)b->dtype));
  if (!is_index(off)) fail(a.kernel, "invalid offset %g", off);
  bool is_ta = false;
  napi_is_typedarray(a.env, a.argv[3], &is_ta);
  if (!is_ta) fail(a.kernel, "data must be a typed array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_get_typedarray_info(a.env, a.argv[3], &type, &length, &data, nullptr, nullptr);
  const DType dt = (DType)b->dtype;
  if (!typed_array_matches(dt, type)) fail(a.kernel, "host data does not match dtype %s", dtype_name(dt));
  const size_t es = dtype_bytes(dt);
  const size_t cap = b->bytes / es;
  if ((size_t)off > cap || length > cap - (size_t)off)
    fail(a.kernel, "%zu elements at offset %zu exceed the buffer of %zu elements", length, (size_t)off, cap);
  if (length) std::memcpy(static_cast<char*>(b->data) + (size_t)off * es, data, length * es);
  return nullptr;
})

// Reads len bytes at file position pos into dst in 8 MB pieces, the OpenMP threads side by side: the
// page faults of fresh memory, which dominate, are then taken on every core. Returns 0, an errno, or −1
// for a file that ends early; `at` is then the file byte of the first (lowest) failing piece.
int read_pieces(int fd, char* dst, size_t pos, size_t len, size_t& at) {
  constexpr size_t kPiece = size_t(8) << 20;
  const long long pieces = (long long)((len + kPiece - 1) / kPiece);
  long long bad = pieces;
  int result = 0;
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1)
  for (long long i = 0; i < pieces; i++) {
    const size_t end = std::min(len, (size_t)(i + 1) * kPiece);
    size_t done = (size_t)i * kPiece;
    while (done < end) {
      const ssize_t got = pread(fd, dst + done, end - done, (off_t)(pos + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        const int e = got < 0 ? errno : -1;
#pragma omp critical(vera_read_pieces)
        if (i < bad) {
          bad = i;
          result = e;
          at = pos + done;
        }
        break;
      }
      done += (size_t)got;
    }
  }
  return result;
}

// readFile(external, byteOffset, fd, position, bytes): fills the buffer's bytes [byteOffset,
// byteOffset + bytes) straight from an open file at `position` (pread, no host copy in between: what a
// raw safetensors tensor needs). A short file or a read error fails, naming the byte it reached.
KERNEL(ReadFile, "readFile", {
  if (a.argc < 5) fail(a.kernel, "expected (buffer, byteOffset, fd, position, bytes)");
  Block* b = a.block(a.argv[0], "destination");
  const double off = arg_number(a, 1, "byteOffset");
  const double fd = arg_number(a, 2, "fd");
  const double pos = arg_number(a, 3, "position");
  const double len = arg_number(a, 4, "bytes");
  if (!is_index(off) || !is_index(pos) || !is_index(len) || !(fd >= 0 && std::floor(fd) == fd))
    fail(a.kernel, "invalid arguments (offset %g, fd %g, position %g, bytes %g)", off, fd, pos, len);
  if ((size_t)off > b->bytes || (size_t)len > b->bytes - (size_t)off)
    fail(a.kernel, "%g bytes at byte %g exceed the buffer of %zu bytes", len, off, b->bytes);
  size_t at = 0;
  const int err = read_pieces((int)fd, static_cast<char*>(b->data) + (size_t)off, (size_t)pos, (size_t)len, at);
  if (err > 0) fail(a.kernel, "read failed at byte %zu: %s", at, std::strerror(err));
  if (err < 0) fail(a.kernel, "the file ends at byte %zu, before the %g bytes asked for", at, len);
  return nullptr;
})

// download(external, typedArray) with the view in the descriptor: fills the dense host array.
KERNEL(Download, "download", {
  View v = a.view("view");
  if (a.argc < 2) fail(a.kernel, "missing destination array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  bool is_ta = false;
  napi_is_typedarray(a.env, a.argv[1], &is_ta);
  if (!is_ta) fail(a.kernel, "destination must be a typed array");
  napi_get_typedarray_info(a.env, a.argv[1], &type, &length, &data, nullptr, nullptr);
  if (!typed_array_matches(v.dtype, type) || (int64_t)length != v.numel()) fail(a.kernel, "destination array does not fit the view");
  if (length) copy_to_host(data, v);
  return nullptr;
})

// memory() writes [allocated, cached] into descriptor slots 0 and 1.
KERNEL(Memory, "memory", {
  CacheStats s = cache_stats();
  double* d = instance(a.env)->desc;
  d[0] = (double)s.allocated;
  d[1] = (double)s.cached;
  return nullptr;
})

KERNEL(EmptyCache, "emptyCache", {
  cache_empty();
  sync_external_memory(a.env);
  return nullptr;
})

KERNEL(GetThreads, "getThreads", {
  napi_value r;
  napi_create_int32(a.env, omp_get_max_threads(), &r);
  return r;
})

KERNEL(Bf16GemmImpl, "bf16GemmImpl", {
  const std::string impl = bf16_gemm_impl();
  napi_value r;
  napi_create_string_utf8(a.env, impl.c_str(), impl.size(), &r);
  return r;
})

KERNEL(SetThreads, "setThreads", {
  const double n = arg_number(a, 0, "thread count");
  if (!(n >= 1 && n <= 4096 && std::floor(n) == n)) fail(a.kernel, "thread count must be a positive integer, got %g", n);
  omp_set_num_threads((int)n);
  return nullptr;
})

// ---- kernels ----------------------------------------------------------------------------------------
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
// attention scalars: [scale, causal, window, dropout on, p, seed_lo, seed_hi, offset] (seed split in
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

// ---- module setup -----------------------------------------------------------------------------------

napi_value string_array(napi_env env, const char* const* names, int n) {
  napi_value arr;
  napi_create_array_with_length(env, n, &arr);
  for (int i = 0; i < n; i++) {
    napi_value s;
    napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, i, s);
  }
  return arr;
}

void set_prop(napi_env env, napi_value obj, const char* name, napi_value v) { napi_set_named_property(env, obj, name, v); }

void finalize_instance(napi_env env, void* data, void*) {
  Instance* inst = static_cast<Instance*>(data);
  if (inst->desc_ref) napi_delete_reference(env, inst->desc_ref);
  delete inst;
}

int default_threads() {
  const char* s = std::getenv("VERA_NUM_THREADS");
  if (s && *s) {
    char* end = nullptr;
    long n = std::strtol(s, &end, 10);
    if (end && *end == 0 && n >= 1 && n <= 4096) return (int)n;
  }
  return omp_get_num_procs();
}

napi_value Init(napi_env env, napi_value exports) {
  Instance* inst = new Instance();
  napi_value ab, desc;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, kDescLen * sizeof(double), &data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, kDescLen, ab, 0, &desc) != napi_ok) {
    delete inst;
    napi_throw_error(env, nullptr, "[native] could not create the descriptor");
    return nullptr;
  }
  inst->desc = static_cast<double*>(data);
  std::memset(inst->desc, 0, kDescLen * sizeof(double));
  napi_create_reference(env, desc, 1, &inst->desc_ref);
  napi_set_instance_data(env, inst, finalize_instance, nullptr);
  omp_set_num_threads(default_threads());

  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"alloc", Alloc},
      {"free", Free},
      {"upload", Upload},
      {"readFile", ReadFile},
      {"download", Download},
      {"memory", Memory},
      {"emptyCache", EmptyCache},
      {"getThreads", GetThreads},
      {"setThreads", SetThreads},
      {"bf16GemmImpl", Bf16GemmImpl},
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
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    set_prop(env, exports, f.name, fn);
  }
  set_prop(env, exports, "descriptor", desc);
  napi_value names;
  napi_create_object(env, &names);
  set_prop(env, names, "dtype", string_array(env, kDTypeCodes, kNumDTypes));
  set_prop(env, names, "unary", string_array(env, kUnaryNames, U_COUNT));
  set_prop(env, names, "scalar", string_array(env, kScalarNames, S_COUNT));
  set_prop(env, names, "binary", string_array(env, kBinaryNames, B_COUNT));
  set_prop(env, names, "unaryGrad", string_array(env, kUnaryGradNames, G_COUNT));
  set_prop(env, names, "reduce", string_array(env, kReduceNames, R_COUNT));
  set_prop(env, exports, "names", names);
  napi_value consts;
  napi_create_object(env, &consts);
  napi_value v;
  napi_create_int32(env, kScalars, &v);
  set_prop(env, consts, "scalarSlots", v);
  napi_create_int32(env, kDescLen, &v);
  set_prop(env, consts, "descriptorLength", v);
  napi_create_int32(env, kMaxDims, &v);
  set_prop(env, consts, "maxDims", v);
  set_prop(env, exports, "constants", consts);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
