// N-API entry points of the vera_cuda addon: device buffers (externals over CUDA's stream-ordered
// allocator), uploads, reads (download waits for the stream; downloadAsync waits on a worker thread so
// the event loop keeps running), checkpoint reads straight into device memory, memory statistics,
// sync and device facts. The kernels' wrappers are native/src/kernel_exports.h, shared with the CPU
// addon; their CUDA implementations are native/cuda/*.cu.
#include <cublasLt.h>
#include <node_api.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../src/kernel_exports.h"
#include "../src/napi_glue.h"
#include "attention_cudnn.h"
#include "device.cuh"

using namespace vera;

namespace vera {
void export_nccl(napi_env env, napi_value exports);  // nccl.cu
}

namespace {

// ---- buffers -------------------------------------------------------------------------------------

std::atomic<uint64_t> g_live{0};

// Every allocation is at least 256 bytes (a Block with data == nullptr means "freed").
constexpr size_t kMinAlloc = 256;

void release(Block* b) {
  if (!b->data) return;
  // Stream-ordered: kernels already queued that use the block run first.
  cudaFreeAsync(b->data, cu::stream());
  g_live -= b->bytes;
  b->data = nullptr;
}

void finalize_block(napi_env, void* data, void*) {
  Block* b = static_cast<Block*>(data);
  release(b);
  delete b;
}

KERNEL(Alloc, "alloc", {
  const double code = arg_number(a, 0, "dtype");
  const double n = arg_number(a, 1, "numel");
  if (!(code >= 0 && code < kNumDTypes && std::floor(code) == code)) fail(a.kernel, "invalid dtype code");
  const DType dt = (DType)(int)code;
  if (dt == DType::F64) fail(a.kernel, "f64 is not supported by the cuda backend (use f32)");
  if (!is_index(n)) fail(a.kernel, "invalid element count %g", n);
  const size_t bytes = (size_t)n * dtype_bytes(dt);
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, std::max(bytes, kMinAlloc), cu::stream());
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    fail(a.kernel, "out of device memory: %zu bytes asked, %zu of %zu free (%llu held by live buffers)", bytes, free_b, total,
         (unsigned long long)g_live.load());
  }
  cu::check(e, a.kernel, "cudaMallocAsync");
  Block* b = new Block();
  b->data = p;
  b->bytes = bytes;
  b->capacity = std::max(bytes, kMinAlloc);
  b->dtype = (int)dt;
  g_live += bytes;
  napi_value ext;
  if (napi_create_external(a.env, b, finalize_block, nullptr, &ext) != napi_ok) {
    release(b);
    delete b;
    fail(a.kernel, "could not create the buffer handle");
  }
  return ext;
})

KERNEL(Free, "free", {
  void* p = nullptr;
  if (a.argc < 1 || napi_get_value_external(a.env, a.argv[0], &p) != napi_ok || !p) fail(a.kernel, "not a cuda backend buffer");
  release(static_cast<Block*>(p));
  return nullptr;
})

// upload(external, dtypeCode, offset, typedArray): queued on the stream; the host array may be
// reused as soon as this returns (pageable memory is staged by the driver before it returns).
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
  if (length)
    cu::check(cudaMemcpyAsync(static_cast<char*>(b->data) + (size_t)off * es, data, length * es, cudaMemcpyHostToDevice, cu::stream()),
              a.kernel, "cudaMemcpyAsync");
  return nullptr;
})

// Pinned host memory for staging checkpoint reads.
struct Pinned {
  void* p = nullptr;
  explicit Pinned(size_t n) { cu::check(cudaMallocHost(&p, n), "readFile", "pinned staging buffer"); }
  ~Pinned() { cudaFreeHost(p); }
};

// readFile(external, byteOffset, fd, position, bytes): file bytes straight into device memory through
// two pinned 32 MiB staging buffers (a read overlaps the previous piece's copy).
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
  constexpr size_t kPiece = size_t(32) << 20;
  const size_t total = (size_t)len;
  if (total == 0) return nullptr;
  Pinned stage[2] = {Pinned(std::min(kPiece, total)), Pinned(std::min(kPiece, total))};
  cudaEvent_t done[2];
  for (auto& e : done) cu::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), a.kernel, "cudaEventCreate");
  bool used[2] = {false, false};
  size_t at = 0;
  std::string err;
  for (int piece = 0; at < total && err.empty(); piece ^= 1) {
    if (used[piece]) cudaEventSynchronize(done[piece]);  // the copy out of this buffer has finished
    const size_t n = std::min(kPiece, total - at);
    char* dst = static_cast<char*>(stage[piece].p);
    size_t got_all = 0;
    while (got_all < n) {
      const ssize_t got = pread((int)fd, dst + got_all, n - got_all, (off_t)((size_t)pos + at + got_all));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        err = std::string("read failed at byte ") + std::to_string((size_t)pos + at + got_all) + ": " + std::strerror(errno);
        break;
      }
      if (got == 0) {
        err = "the file ends at byte " + std::to_string((size_t)pos + at + got_all) + ", before the " + std::to_string(total) +
              " bytes asked for";
        break;
      }
      got_all += (size_t)got;
    }
    if (!err.empty()) break;
    cu::check(cudaMemcpyAsync(static_cast<char*>(b->data) + (size_t)off + at, dst, n, cudaMemcpyHostToDevice, cu::stream()), a.kernel,
              "cudaMemcpyAsync");
    cu::check(cudaEventRecord(done[piece], cu::stream()), a.kernel, "cudaEventRecord");
    used[piece] = true;
    at += n;
  }
  const cudaError_t e = cudaStreamSynchronize(cu::stream());
  for (auto& ev : done) cudaEventDestroy(ev);
  if (!err.empty()) fail(a.kernel, "%s", err.c_str());
  cu::check(e, a.kernel, "cudaStreamSynchronize");
  return nullptr;
})

// A dense device copy of the view (the view itself when it is dense): what a read copies from.
const void* dense_source(const View& v, size_t& bytes) {
  const size_t es = dtype_bytes(v.dtype);
  bytes = (size_t)v.numel() * es;
  if (v.contiguous()) return static_cast<const char*>(v.base) + v.offset * es;
  View d = v;
  int64_t s = 1;
  for (int i = v.ndim - 1; i >= 0; i--) {
    d.strides[i] = s;
    s *= v.shape[i];
  }
  d.offset = 0;
  d.base = cu::scratch(std::max<size_t>(bytes, 1), 0);
  copy(d, v);
  return d.base;
}

void host_array(Args& a, napi_value arr, const View& v, void*& data, size_t& length) {
  napi_typedarray_type type;
  bool is_ta = false;
  napi_is_typedarray(a.env, arr, &is_ta);
  if (!is_ta) fail(a.kernel, "destination must be a typed array");
  napi_get_typedarray_info(a.env, arr, &type, &length, &data, nullptr, nullptr);
  if (!typed_array_matches(v.dtype, type) || (int64_t)length != v.numel()) fail(a.kernel, "destination array does not fit the view");
}

// download(external, typedArray) with the view in the descriptor: waits for the queued kernels, then
// throws a data-dependent error they recorded, if any.
KERNEL(Download, "download", {
  View v = a.view("view");
  if (a.argc < 2) fail(a.kernel, "missing destination array");
  void* data = nullptr;
  size_t length = 0;
  host_array(a, a.argv[1], v, data, length);
  if (length) {
    size_t bytes = 0;
    const void* src = dense_source(v, bytes);
    cu::check(cudaMemcpyAsync(data, src, bytes, cudaMemcpyDeviceToHost, cu::stream()), a.kernel, "cudaMemcpyAsync");
  }
  cu::check(cudaStreamSynchronize(cu::stream()), a.kernel, "a queued kernel failed");
  cu::raise_device_error();
  return nullptr;
})

// ---- downloadAsync: the copy is queued into pinned memory behind an event; a worker thread waits on
// the event, and the completion (on the JS thread) copies into the destination and settles the promise.
struct AsyncRead {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref dest = nullptr;
  void* pinned = nullptr;
  size_t bytes = 0;
  cudaEvent_t event = nullptr;
  cudaError_t status = cudaSuccess;
};

void async_execute(napi_env, void* data) {
  AsyncRead* r = static_cast<AsyncRead*>(data);
  r->status = cudaEventSynchronize(r->event);
}

void async_complete(napi_env env, napi_status, void* data) {
  AsyncRead* r = static_cast<AsyncRead*>(data);
  std::string err;
  if (r->status != cudaSuccess) {
    err = std::string("[cuda downloadAsync] a queued kernel failed: ") + cudaGetErrorString(r->status);
  } else {
    try {
      cu::raise_device_error();
    } catch (const Error& e) {
      err = e.what();
    }
  }
  napi_value arr;
  if (err.empty() && napi_get_reference_value(env, r->dest, &arr) == napi_ok && r->bytes) {
    void* dst = nullptr;
    size_t length = 0;
    napi_typedarray_type type;
    napi_get_typedarray_info(env, arr, &type, &length, &dst, nullptr, nullptr);
    std::memcpy(dst, r->pinned, r->bytes);
  }
  if (err.empty()) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, r->deferred, undef);
  } else {
    napi_value msg, error;
    napi_create_string_utf8(env, err.c_str(), err.size(), &msg);
    napi_create_error(env, nullptr, msg, &error);
    napi_reject_deferred(env, r->deferred, error);
  }
  napi_delete_reference(env, r->dest);
  napi_delete_async_work(env, r->work);
  if (r->pinned) cudaFreeHost(r->pinned);
  cudaEventDestroy(r->event);
  delete r;
}

// downloadAsync(external, typedArray) -> Promise<void> that fills the array.
KERNEL(DownloadAsync, "downloadAsync", {
  View v = a.view("view");
  if (a.argc < 2) fail(a.kernel, "missing destination array");
  void* data = nullptr;
  size_t length = 0;
  host_array(a, a.argv[1], v, data, length);
  AsyncRead* r = new AsyncRead();
  try {
    if (length) {
      const void* src = dense_source(v, r->bytes);
      cu::check(cudaMallocHost(&r->pinned, r->bytes), a.kernel, "pinned buffer");
      cu::check(cudaMemcpyAsync(r->pinned, src, r->bytes, cudaMemcpyDeviceToHost, cu::stream()), a.kernel, "cudaMemcpyAsync");
    }
    cu::check(cudaEventCreateWithFlags(&r->event, cudaEventDisableTiming), a.kernel, "cudaEventCreate");
    cu::check(cudaEventRecord(r->event, cu::stream()), a.kernel, "cudaEventRecord");
  } catch (...) {
    if (r->pinned) cudaFreeHost(r->pinned);
    if (r->event) cudaEventDestroy(r->event);
    delete r;
    throw;
  }
  napi_value promise, name;
  napi_create_promise(a.env, &r->deferred, &promise);
  napi_create_reference(a.env, a.argv[1], 1, &r->dest);
  napi_create_string_utf8(a.env, "vera_cuda_download", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(a.env, nullptr, name, async_execute, async_complete, r, &r->work);
  napi_queue_async_work(a.env, r->work);
  return promise;
})

// memory() writes [allocated, cached, peak] into descriptor slots 0..2: live buffer bytes, what the
// stream-ordered pool holds beyond them, and the most the pool had in use (buffers, scratch and GEMM
// workspaces, as allocated) since start or resetPeakMemory().
KERNEL(Memory, "memory", {
  cudaMemPool_t pool;
  cu::check(cudaDeviceGetDefaultMemPool(&pool, cu::device()), a.kernel, "default memory pool");
  uint64_t reserved = 0, used = 0, high = 0;
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high);
  double* d = instance(a.env)->desc;
  d[0] = (double)g_live.load();
  d[1] = (double)(reserved > used ? reserved - used : 0);
  d[2] = (double)high;
  return nullptr;
})

// The pool's high-water mark restarts from what is in use now (0 is the only value CUDA accepts).
KERNEL(ResetPeakMemory, "resetPeakMemory", {
  cu::check(cudaStreamSynchronize(cu::stream()), a.kernel, "a queued kernel failed");
  cudaMemPool_t pool;
  cu::check(cudaDeviceGetDefaultMemPool(&pool, cu::device()), a.kernel, "default memory pool");
  uint64_t zero = 0;
  cu::check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), a.kernel, "reset the pool's high-water mark");
  return nullptr;
})

// profileReport() -> JSON string of per-label totals since the last report, or "null" (profile.cu).
KERNEL(ProfileReport, "profileReport", {
  const std::string json = cu::profile_report();
  napi_value v;
  napi_create_string_utf8(a.env, json.c_str(), json.size(), &v);
  return v;
})

KERNEL(EmptyCache, "emptyCache", {
  cu::check(cudaStreamSynchronize(cu::stream()), a.kernel, "a queued kernel failed");
  cudaMemPool_t pool;
  cu::check(cudaDeviceGetDefaultMemPool(&pool, cu::device()), a.kernel, "default memory pool");
  cu::check(cudaMemPoolTrimTo(pool, 0), a.kernel, "cudaMemPoolTrimTo");
  return nullptr;
})

KERNEL(Sync, "sync", {
  cu::check(cudaStreamSynchronize(cu::stream()), a.kernel, "a queued kernel failed");
  cu::raise_device_error();
  return nullptr;
})

// deviceInfo() -> { name, device, deviceCount, computeCapability, memory, multiprocessors, driver, runtime, cublasLt }:
// initialises the device, so a machine without one fails here, at load, with CUDA's reason.
KERNEL(DeviceInfo, "deviceInfo", {
  const int dev = cu::device();
  cudaDeviceProp p;
  cu::check(cudaGetDeviceProperties(&p, dev), a.kernel, "cudaGetDeviceProperties");
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  napi_value o;
  napi_create_object(a.env, &o);
  auto str = [&](const char* key, const std::string& s) {
    napi_value v;
    napi_create_string_utf8(a.env, s.c_str(), s.size(), &v);
    set_prop(a.env, o, key, v);
  };
  auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); };
  str("name", p.name);
  str("device", std::to_string(dev));
  int count = 0;
  cudaGetDeviceCount(&count);
  str("deviceCount", std::to_string(count));
  str("computeCapability", std::to_string(p.major) + "." + std::to_string(p.minor));
  str("memory", std::to_string(p.totalGlobalMem >> 20) + " MiB");
  str("multiprocessors", std::to_string(p.multiProcessorCount));
  str("driver", ver(driver));
  str("runtime", ver(runtime));
  str("cublasLt", std::to_string(cublasLtGetVersion()));
  str("bf16Gemm", bf16_gemm_impl());
  return o;
})

// cuDNN's fused attention as this process uses it (attention_cudnn.cc): JSON with whether it was built
// in, cuDNN's version, the calls it took and declined, and the last decline's reason.
KERNEL(CudnnAttention, "cudnnAttention", {
  const std::string s = attn::cudnn_info();
  napi_value v;
  napi_create_string_utf8(a.env, s.c_str(), s.size(), &v);
  return v;
})

// A JS array of `names` without those listed in the comma-separated environment variable `hide_env`.
template <size_t N>
napi_value name_list(napi_env env, const char* const (&names)[N], const char* hide_env) {
  const char* hide = std::getenv(hide_env);
  const std::string hidden = std::string(",") + (hide ? hide : "") + ",";
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t n = 0;
  for (const char* name : names) {
    if (hidden.find(std::string(",") + name + ",") != std::string::npos) continue;
    napi_value s;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, n++, s);
  }
  return arr;
}

// Fused kernels this addon implements (every one of them); VERA_CUDA_COMPOSITE=name,name,... hides
// some, so fused() gives their composites (for measurements and debugging).
KERNEL(FusedKernels, "fusedKernels", {
  static const char* const names[] = {"softmax",      "softmaxBackward",      "layerNorm", "layerNormBackward", "rmsNorm",
                                      "rmsNormBackward", "crossEntropy",     "crossEntropyBackward", "rope",      "dropout",
                                      "adamw",           "attention",        "attentionBackward", "gatedActivation",
                                      "gatedActivationBackward", "scaleFold", "scaleGrads", "scaleAdd"};
  return name_list(a.env, names, "VERA_CUDA_COMPOSITE");
})

// Kernels that take bf16 views themselves (backend.ts, "bf16 activations"); every other kernel reaches
// bf16 views through the widening fallback of src/backends/bf16-views.ts. VERA_CUDA_BF16_FALLBACK=
// name,name,... hides some, so they take the fallback (for measurements and debugging).
KERNEL(Bf16Kernels, "bf16Kernels", {
  static const char* const names[] = {"matmul",    "unary",        "scalar",      "binary",
                                      "unaryGrad", "where",        "reduce",      "argmax",
                                      "topk",      "embedding",    "embeddingBackward", "gather",
                                      "layerNorm", "layerNormBackward", "rmsNorm", "rmsNormBackward",
                                      "rope",      "dropout",      "attention",   "attentionBackward",
                                      "gatedActivation", "gatedActivationBackward", "scaleFold", "scaleGrads", "scaleAdd"};
  return name_list(a.env, names, "VERA_CUDA_BF16_FALLBACK");
})

napi_value Init(napi_env env, napi_value exports) {
  napi_value desc;
  if (!init_instance(env, desc)) return nullptr;
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"alloc", Alloc},   {"free", Free},         {"upload", Upload},         {"readFile", ReadFile},
      {"download", Download}, {"downloadAsync", DownloadAsync}, {"memory", Memory}, {"resetPeakMemory", ResetPeakMemory}, {"profileReport", ProfileReport}, {"emptyCache", EmptyCache},
      {"sync", Sync},     {"deviceInfo", DeviceInfo}, {"cudnnAttention", CudnnAttention}, {"fusedKernels", FusedKernels},
      {"bf16Kernels", Bf16Kernels},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    set_prop(env, exports, f.name, fn);
  }
  export_kernels(env, exports);
  export_nccl(env, exports);
  export_tables(env, exports, desc, kernel_names(env));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
