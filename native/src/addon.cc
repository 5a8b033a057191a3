// N-API entry points of the vera_native addon: buffer handles (externals with finalizers over the
// caching allocator) and one exported function per kernel; the descriptor and argument checks are
// napi_glue.h's. No kernel math lives here.
#include <node_api.h>
#include <omp.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#endif

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
#include "kernel_exports.h"
#include "napi_glue.h"

using namespace vera;

namespace {

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

// out = f(x), grad = f'(x): a native-only fused kernel (kernels.h), so it is exported here rather than
// with the kernels both addons share (kernel_exports.h).
KERNEL(UnaryWithGrad, "unaryWithGrad", {
  const int op = a.op();
  View out = a.view("output"), grad = a.view("grad"), x = a.view("x");
  unary_with_grad(op, out, grad, x);
  return nullptr;
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

// Lowers the scheduling priority (raises the nice value) of the calling thread and of every thread of
// the OpenMP pool, which persist and which threads created later inherit: a server whose model runs in
// a worker thread keeps its HTTP thread ahead of the kernels on a busy machine. Linux only (elsewhere
// false); nice values only go up without privileges, so a lower one than the current is kept.
#ifdef __linux__
// True when the calling thread's nice value is at least n afterwards (and, with `idle`, it runs under
// SCHED_IDLE: any other runnable thread of normal policy preempts it at once).
static bool lower_this_thread(int n, bool idle) {
  const pid_t tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  const int cur = getpriority(PRIO_PROCESS, tid);
  const bool niced = (errno == 0 && cur >= n) || setpriority(PRIO_PROCESS, tid, n) == 0;
  if (!idle) return niced;
  sched_param p{};
  p.sched_priority = 0;
  return niced && sched_setscheduler(tid, SCHED_IDLE, &p) == 0;
}

static bool lower_pool(int n, bool idle) {
  int failed = lower_this_thread(n, idle) ? 0 : 1;
#pragma omp parallel reduction(+ : failed)
  failed += lower_this_thread(n, idle) ? 0 : 1;
  return failed == 0;
}
#else
static bool lower_pool(int, bool) { return false; }
#endif

KERNEL(LowerPriority, "lowerPriority", {
  const double n = arg_number(a, 0, "nice value");
  if (!(n >= 0 && n <= 19 && std::floor(n) == n)) fail(a.kernel, "nice value must be an integer in 0..19, got %g", n);
  bool idle = false;
  if (a.argc > 1) napi_get_value_bool(a.env, a.argv[1], &idle);
  napi_value r;
  napi_get_boolean(a.env, lower_pool((int)n, idle), &r);
  return r;
})

// ---- module setup -----------------------------------------------------------------------------------

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
  napi_value desc;
  if (!init_instance(env, desc)) return nullptr;
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
      {"lowerPriority", LowerPriority},
      {"bf16GemmImpl", Bf16GemmImpl},
      {"unaryWithGrad", UnaryWithGrad},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    set_prop(env, exports, f.name, fn);
  }
  export_kernels(env, exports);
  export_tables(env, exports, desc, kernel_names(env));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
