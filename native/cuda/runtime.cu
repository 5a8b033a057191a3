// The CUDA backend's process-wide state: the device (VERA_CUDA_DEVICE, default 0), its one stream,
// the mapped record of data-dependent errors, scratch slots, and the error-check helpers every
// kernel file uses (device.cuh declares them).
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "device.cuh"

namespace vera {
namespace cu {
namespace {

struct Runtime {
  int device = 0;
  int sms = 0;
  cudaStream_t stream = nullptr;
  DeviceError* host_err = nullptr;  // mapped pinned memory
  DeviceError* dev_err = nullptr;   // its device alias
  void* scratch[4] = {};
  size_t scratch_bytes[4] = {};
};

int device_from_env() {
  const char* s = std::getenv("VERA_CUDA_DEVICE");
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long n = std::strtol(s, &end, 10);
  if (!end || *end || n < 0 || n > 1023) fail("init", "VERA_CUDA_DEVICE=%s is not a device index", s);
  return (int)n;
}

// Created on first use and never destroyed: buffer finalizers may run during teardown.
Runtime& rt() {
  static Runtime* r = [] {
    Runtime* x = new Runtime();
    int count = 0;
    check(cudaGetDeviceCount(&count), "init", "no usable CUDA device (cudaGetDeviceCount)");
    x->device = device_from_env();
    if (x->device >= count) fail("init", "VERA_CUDA_DEVICE=%d, but this machine has %d CUDA device(s)", x->device, count);
    check(cudaSetDevice(x->device), "init", "cudaSetDevice");
    check(cudaDeviceGetAttribute(&x->sms, cudaDevAttrMultiProcessorCount, x->device), "init", "multiprocessor count");
    check(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking), "init", "cudaStreamCreate");
    // The stream-ordered pool keeps freed memory for reuse (a training step allocates the same sizes
    // every iteration); emptyCache() trims it.
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, x->device), "init", "default memory pool");
    uint64_t keep = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "init", "memory pool release threshold");
    check(cudaHostAlloc((void**)&x->host_err, sizeof(DeviceError), cudaHostAllocMapped), "init", "error record");
    std::memset(x->host_err, 0, sizeof(DeviceError));
    check(cudaHostGetDevicePointer((void**)&x->dev_err, x->host_err, 0), "init", "error record mapping");
    return x;
  }();
  return *r;
}

const char* kernel_name(int k) {
  switch (k) {
    case EK_EMBEDDING: return "embedding";
    case EK_EMBEDDING_BACKWARD: return "embeddingBackward";
    case EK_GATHER: return "gather";
    case EK_SCATTER_ADD: return "scatterAdd";
    case EK_CROSS_ENTROPY: return "crossEntropy";
    case EK_CROSS_ENTROPY_BACKWARD: return "crossEntropyBackward";
  }
  return "kernel";
}

}  // namespace

void check(cudaError_t e, const char* kernel, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call does not see it again
  fail(kernel, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

cudaStream_t stream() { return rt().stream; }
int device() { return rt().device; }
int sm_count() { return rt().sms; }
DeviceError* device_error() { return rt().dev_err; }

void raise_device_error() {
  DeviceError* e = rt().host_err;
  if (e->flag == 0) return;
  const DeviceError copy = *e;
  std::memset(e, 0, sizeof(DeviceError));
  const char* k = kernel_name(copy.kernel);
  const char* what = copy.kernel == EK_EMBEDDING || copy.kernel == EK_EMBEDDING_BACKWARD ? "id"
                     : copy.kernel == EK_CROSS_ENTROPY || copy.kernel == EK_CROSS_ENTROPY_BACKWARD ? "target"
                                                                                                     : "index";
  fail(k, "%s %lld at position %lld is out of range [0, %lld) (found on the device, reported at this read: outputs queued since are unreliable)",
       what, copy.value, copy.position, copy.limit);
}

void* scratch(size_t bytes, int slot) {
  if (slot < 0 || slot > 3) fail("scratch", "slot %d out of range", slot);
  Runtime& r = rt();
  if (bytes <= r.scratch_bytes[slot]) return r.scratch[slot];
  // Freed in stream order: kernels already queued keep the old block until they ran.
  if (r.scratch[slot]) check(cudaFreeAsync(r.scratch[slot], r.stream), "scratch", "cudaFreeAsync");
  r.scratch[slot] = nullptr;
  r.scratch_bytes[slot] = 0;
  size_t want = 1 << 20;
  while (want < bytes) want *= 2;
  check(cudaMallocAsync(&r.scratch[slot], want, r.stream), "scratch", "out of device memory for scratch");
  r.scratch_bytes[slot] = want;
  return r.scratch[slot];
}

}  // namespace cu
}  // namespace vera
