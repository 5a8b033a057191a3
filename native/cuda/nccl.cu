// NCCL for data-parallel training on cuda: one communicator per process (a rank drives one GPU),
// collectives queued on the backend's stream like every kernel. NCCL is opened with dlopen when first
// asked for — $VERA_NCCL_LIB, else the library scripts/build-cuda.mjs found (VERA_NCCL_DEFAULT), else
// libnccl.so.2 on the loader's path — so the addon builds and loads without NCCL, and a machine
// without it gets one error saying where it looked. The few declarations below are NCCL's stable C
// ABI (nccl.h of NCCL 2.x: the unique id is 128 opaque bytes, the enum values are fixed).
#include <dlfcn.h>
#include <node_api.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "../src/napi_glue.h"
#include "device.cuh"

using namespace vera;

namespace {

typedef struct ncclComm* ncclComm_t;
constexpr int kIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct ncclUniqueId {
  char internal[kIdBytes];
};
typedef int ncclResult_t;  // ncclSuccess = 0
enum : int { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclInt64 = 4, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
// Reduction codes in our order ('sum', 'max', 'min'), as NCCL numbers them.
constexpr int kRedOps[] = {0 /* ncclSum */, 2 /* ncclMax */, 3 /* ncclMin */};

struct Nccl {
  std::string path;
  ncclResult_t (*getVersion)(int*);
  ncclResult_t (*getUniqueId)(ncclUniqueId*);
  ncclResult_t (*commInitRank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*commDestroy)(ncclComm_t);
  ncclResult_t (*commAbort)(ncclComm_t);
  ncclResult_t (*allReduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*broadcast)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*allGather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t);
  const char* (*errorString)(ncclResult_t);
};

#ifndef VERA_NCCL_DEFAULT
#define VERA_NCCL_DEFAULT ""
#endif

// Opens NCCL once; on failure every later call repeats the same message.
const Nccl& nccl(const char* kernel) {
  static std::string why;
  static Nccl* lib = [&]() -> Nccl* {
    std::string tried;
    void* h = nullptr;
    std::string path;
    const char* env = std::getenv("VERA_NCCL_LIB");
    for (const char* c : {env ? env : "", VERA_NCCL_DEFAULT, "libnccl.so.2"}) {
      if (!*c) continue;
      h = dlopen(c, RTLD_NOW | RTLD_GLOBAL);
      if (h) {
        path = c;
        break;
      }
      tried += std::string(tried.empty() ? "" : "; ") + dlerror();
    }
    if (!h) {
      why = "NCCL is not available (" + tried +
            "): install it (pip's nvidia-nccl-cu13, or NVIDIA's libnccl2 package) or set VERA_NCCL_LIB to libnccl.so.2";
      return nullptr;
    }
    Nccl* n = new Nccl();
    n->path = path;
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (!fn) ok = false;
    };
    sym(n->getVersion, "ncclGetVersion");
    sym(n->getUniqueId, "ncclGetUniqueId");
    sym(n->commInitRank, "ncclCommInitRank");
    sym(n->commDestroy, "ncclCommDestroy");
    sym(n->commAbort, "ncclCommAbort");
    sym(n->allReduce, "ncclAllReduce");
    sym(n->broadcast, "ncclBroadcast");
    sym(n->allGather, "ncclAllGather");
    sym(n->errorString, "ncclGetErrorString");
    if (!ok) {
      why = path + " lacks NCCL 2's entry points (ncclCommInitRank, ncclAllReduce, …)";
      delete n;
      return nullptr;
    }
    return n;
  }();
  if (!lib) fail(kernel, "%s", why.c_str());
  return *lib;
}

void check_nccl(const Nccl& n, ncclResult_t r, const char* kernel, const char* what) {
  if (r != 0) fail(kernel, "%s: %s (NCCL error %d)", what, n.errorString(r), r);
}

struct Comm {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 0;
};
Comm g;

const Nccl& joined(const char* kernel) {
  const Nccl& n = nccl(kernel);
  if (!g.comm) fail(kernel, "no NCCL communicator: call ncclInit first");
  return n;
}

int nccl_type(DType d, const char* kernel) {
  switch (d) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::Bool: return ncclUint8;
    default: break;
  }
  fail(kernel, "%s views are not reduced by NCCL here", dtype_name(d));
}

int red_op(Args& a, size_t i) {
  const double op = arg_number(a, i, "op");
  if (!(op >= 0 && op < 3 && std::floor(op) == op)) fail(a.kernel, "op must be 0 (sum), 1 (max) or 2 (min), got %g", op);
  return kRedOps[(int)op];
}

char* view_ptr(const View& v) { return static_cast<char*>(v.base) + v.offset * dtype_bytes(v.dtype); }

View contiguous_view(Args& a, const char* what) {
  View v = a.view(what);
  if (!v.contiguous()) fail(a.kernel, "%s must be contiguous", what);
  return v;
}

// A host typed array's bytes, element type (NCCL's code) and element count.
struct HostData {
  void* data;
  size_t bytes, count;
  int type;
};

HostData host_data(Args& a, size_t i, const char* what) {
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  napi_value ab;
  size_t off = 0;
  bool is = false;
  if (i >= a.argc || napi_is_typedarray(a.env, a.argv[i], &is) != napi_ok || !is ||
      napi_get_typedarray_info(a.env, a.argv[i], &t, &len, &data, &ab, &off) != napi_ok)
    fail(a.kernel, "%s must be a typed array", what);
  switch (t) {
    case napi_float32_array: return {data, len * 4, len, ncclFloat32};
    case napi_float64_array: return {data, len * 8, len, ncclFloat64};
    case napi_int32_array: return {data, len * 4, len, ncclInt32};
    case napi_uint8_array: return {data, len, len, ncclUint8};
    default: break;
  }
  fail(a.kernel, "%s must be a Float32Array, Float64Array, Int32Array or Uint8Array", what);
}

// Runs `body(device_pointer)` on a device copy of a host array and copies the result back, waiting
// for the stream (host collectives block, as MPI's do).
template <typename F>
void through_device(const char* kernel, void* host, size_t bytes, bool copy_in, F body) {
  cudaStream_t s = cu::stream();
  void* dev = nullptr;
  cu::check(cudaMallocAsync(&dev, bytes > 0 ? bytes : 1, s), kernel, "cudaMallocAsync");
  if (copy_in && bytes) cu::check(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s), kernel, "copy to the device");
  body(dev);
  if (bytes) cu::check(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, s), kernel, "copy to the host");
  cudaFreeAsync(dev, s);
  cu::check(cudaStreamSynchronize(s), kernel, "cudaStreamSynchronize");
}

napi_value number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

// ncclVersion() -> { version: 22809, library: path }; throws why NCCL is unavailable.
KERNEL(NcclVersion, "ncclVersion", {
  const Nccl& n = nccl(a.kernel);
  int v = 0;
  check_nccl(n, n.getVersion(&v), a.kernel, "ncclGetVersion");
  napi_value o;
  napi_create_object(a.env, &o);
  set_prop(a.env, o, "version", number(a.env, v));
  napi_value p;
  napi_create_string_utf8(a.env, n.path.c_str(), NAPI_AUTO_LENGTH, &p);
  set_prop(a.env, o, "library", p);
  return o;
})

// ncclUniqueId() -> Uint8Array(128): made by rank 0 and handed to the others out of band.
KERNEL(NcclUniqueId, "ncclUniqueId", {
  const Nccl& n = nccl(a.kernel);
  ncclUniqueId id;
  check_nccl(n, n.getUniqueId(&id), a.kernel, "ncclGetUniqueId");
  void* data = nullptr;
  napi_value ab, out;
  napi_create_arraybuffer(a.env, kIdBytes, &data, &ab);
  std::memcpy(data, id.internal, kIdBytes);
  napi_create_typedarray(a.env, napi_uint8_array, kIdBytes, ab, 0, &out);
  return out;
})

// ncclInit(id: Uint8Array(128), size, rank): joins the communicator on this process's device.
KERNEL(NcclInit, "ncclInit", {
  const Nccl& n = nccl(a.kernel);
  if (g.comm) fail(a.kernel, "this process already joined a communicator (rank %d of %d)", g.rank, g.size);
  HostData id = host_data(a, 0, "id");
  if (id.bytes != kIdBytes || id.type != ncclUint8) fail(a.kernel, "id must be a Uint8Array of %d bytes", kIdBytes);
  const double size = arg_number(a, 1, "size");
  const double rank = arg_number(a, 2, "rank");
  if (!(size >= 1 && size <= 65536 && std::floor(size) == size)) fail(a.kernel, "size must be an integer ≥ 1, got %g", size);
  if (!(rank >= 0 && rank < size && std::floor(rank) == rank)) fail(a.kernel, "rank must be an integer in [0, %g), got %g", size, rank);
  cu::device();  // the runtime (and this rank's device) first
  ncclUniqueId uid;
  std::memcpy(uid.internal, id.data, kIdBytes);
  ncclComm_t c = nullptr;
  check_nccl(n, n.commInitRank(&c, (int)size, uid, (int)rank), a.kernel, "ncclCommInitRank");
  g.comm = c;
  g.rank = (int)rank;
  g.size = (int)size;
  return nullptr;
})

// ncclAllReduce(view, op): in place over a contiguous device view, queued on the stream.
KERNEL(NcclAllReduce, "ncclAllReduce", {
  const Nccl& n = joined(a.kernel);
  View v = contiguous_view(a, "data");
  const int op = red_op(a, 1);
  if (v.numel() == 0) return nullptr;
  char* p = view_ptr(v);
  check_nccl(n, n.allReduce(p, p, (size_t)v.numel(), nccl_type(v.dtype, a.kernel), op, g.comm, cu::stream()), a.kernel, "ncclAllReduce");
  return nullptr;
})

// ncclBroadcast(view, root): root's elements into every rank's view, in place, queued on the stream.
KERNEL(NcclBroadcast, "ncclBroadcast", {
  const Nccl& n = joined(a.kernel);
  View v = contiguous_view(a, "data");
  const double root = arg_number(a, 1, "root");
  if (!(root >= 0 && root < g.size && std::floor(root) == root)) fail(a.kernel, "root must be a rank in [0, %d), got %g", g.size, root);
  if (v.numel() == 0) return nullptr;
  char* p = view_ptr(v);
  check_nccl(n, n.broadcast(p, p, (size_t)v.numel(), nccl_type(v.dtype, a.kernel), (int)root, g.comm, cu::stream()), a.kernel, "ncclBroadcast");
  return nullptr;
})

// ncclAllReduceHost(array, op): a host typed array reduced in place through the device; waits.
KERNEL(NcclAllReduceHost, "ncclAllReduceHost", {
  const Nccl& n = joined(a.kernel);
  HostData h = host_data(a, 0, "data");
  const int op = red_op(a, 1);
  through_device(a.kernel, h.data, h.bytes, true, [&](void* d) {
    if (h.count) check_nccl(n, n.allReduce(d, d, h.count, h.type, op, g.comm, cu::stream()), a.kernel, "ncclAllReduce");
  });
  return nullptr;
})

// ncclBroadcastHost(array, root): root's host array into every rank's, through the device; waits.
KERNEL(NcclBroadcastHost, "ncclBroadcastHost", {
  const Nccl& n = joined(a.kernel);
  HostData h = host_data(a, 0, "data");
  const double root = arg_number(a, 1, "root");
  if (!(root >= 0 && root < g.size && std::floor(root) == root)) fail(a.kernel, "root must be a rank in [0, %d), got %g", g.size, root);
  through_device(a.kernel, h.data, h.bytes, true, [&](void* d) {
    if (h.count) check_nccl(n, n.broadcast(d, d, h.count, h.type, (int)root, g.comm, cu::stream()), a.kernel, "ncclBroadcast");
  });
  return nullptr;
})

// ncclAllGatherHost(send: Uint8Array(k), recv: Uint8Array(k · size)): every rank's bytes in rank order; waits.
KERNEL(NcclAllGatherHost, "ncclAllGatherHost", {
  const Nccl& n = joined(a.kernel);
  HostData s = host_data(a, 0, "send");
  HostData r = host_data(a, 1, "recv");
  if (s.type != ncclUint8 || r.type != ncclUint8) fail(a.kernel, "send and recv must be Uint8Arrays");
  if (r.bytes != s.bytes * (size_t)g.size) fail(a.kernel, "recv holds %zu bytes, not %zu × %d ranks", r.bytes, s.bytes, g.size);
  cudaStream_t st = cu::stream();
  void* dsend = nullptr;
  cu::check(cudaMallocAsync(&dsend, s.bytes > 0 ? s.bytes : 1, st), a.kernel, "cudaMallocAsync");
  if (s.bytes) cu::check(cudaMemcpyAsync(dsend, s.data, s.bytes, cudaMemcpyHostToDevice, st), a.kernel, "copy to the device");
  through_device(a.kernel, r.data, r.bytes, false, [&](void* drecv) {
    if (s.bytes) check_nccl(n, n.allGather(dsend, drecv, s.bytes, ncclUint8, g.comm, st), a.kernel, "ncclAllGather");
  });
  cudaFreeAsync(dsend, st);
  return nullptr;
})

// ncclFinalize(abort: boolean): leaves the communicator (ncclCommAbort when abort, for a failing rank).
KERNEL(NcclFinalize, "ncclFinalize", {
  if (!g.comm) return nullptr;
  const Nccl& n = nccl(a.kernel);
  bool abort = false;
  if (a.argc > 0) napi_get_value_bool(a.env, a.argv[0], &abort);
  ncclComm_t c = g.comm;
  g.comm = nullptr;
  if (abort) n.commAbort(c);
  else {
    cudaStreamSynchronize(cu::stream());
    check_nccl(n, n.commDestroy(c), a.kernel, "ncclCommDestroy");
  }
  return nullptr;
})

}  // namespace

namespace vera {
void export_nccl(napi_env env, napi_value exports) {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"ncclVersion", NcclVersion},           {"ncclUniqueId", NcclUniqueId},           {"ncclInit", NcclInit},
      {"ncclAllReduce", NcclAllReduce},       {"ncclBroadcast", NcclBroadcast},         {"ncclAllReduceHost", NcclAllReduceHost},
      {"ncclBroadcastHost", NcclBroadcastHost}, {"ncclAllGatherHost", NcclAllGatherHost}, {"ncclFinalize", NcclFinalize},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    set_prop(env, exports, f.name, fn);
  }
}
}  // namespace vera
