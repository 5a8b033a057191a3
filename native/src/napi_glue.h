// N-API glue shared by the addons (vera_native, vera_cuda): the shared descriptor through which the TS
// binding (src/backends/native/binding.ts) passes view metadata and scalars, the argument reader that
// checks every view against its buffer, and the KERNEL wrapper that turns vera::Error into a JS Error.
// Buffers are Blocks (buffers.h) whatever memory `data` points to.
#pragma once

#include <node_api.h>

#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "buffers.h"
#include "common.h"

namespace vera {

// ---- the shared descriptor ------------------------------------------------------------------------
// A Float64Array owned by the addon. Slots [0, kScalars) carry a call's scalars (op code first);
// views follow as [dtype, offset, ndim, shape..., strides...] (dtype −1 for an absent optional
// view). Buffers travel as the call's arguments, in view order. Doubles hold integers up to 2^53.
constexpr int kScalars = 12;
constexpr int kDescLen = 1024;

struct Instance {
  double* desc = nullptr;
  napi_ref desc_ref = nullptr;
};

inline Instance* instance(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

inline const char* const kDTypeCodes[kNumDTypes] = {"f32", "f64", "f16", "bf16", "i32", "i64", "bool"};

// ---- errors -----------------------------------------------------------------------------------------

inline void throw_js(napi_env env, const char* msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, msg);
}

constexpr double kMaxSafe = 9007199254740992.0;  // 2^53

inline bool is_index(double x) { return x >= 0 && x <= kMaxSafe && std::floor(x) == x; }

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
      fail(kernel, "%s is not a " VERA_TAG " backend buffer", what);
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

// Optional hooks around every exported call, with the kernel's name and descriptor: the CUDA addon's
// profiler (VERA_CUDA_PROFILE=1) sets them; null costs one test per call.
struct CallHooks {
  void (*begin)(const char* kernel, const double* desc) = nullptr;
  void (*end)() = nullptr;
};
inline CallHooks g_call_hooks;

template <class F>
inline napi_value guarded(napi_env env, napi_callback_info info, const char* kernel, F&& body) {
  Args a;
  a.env = env;
  a.kernel = kernel;
  a.d = instance(env)->desc;
  try {
    if (napi_get_cb_info(env, info, &a.argc, a.argv, nullptr, nullptr) != napi_ok) fail(kernel, "bad call");
    if (a.argc > 12) a.argc = 12;
    if (g_call_hooks.begin) {
      g_call_hooks.begin(kernel, a.d);
      napi_value r = body(a);
      g_call_hooks.end();
      return r;
    }
    return body(a);
  } catch (const Error& e) {
    throw_js(env, e.what());
  } catch (const std::bad_alloc&) {
    std::string m = std::string("[" VERA_TAG " ") + kernel + "] out of memory";
    throw_js(env, m.c_str());
  } catch (const std::exception& e) {
    std::string m = std::string("[" VERA_TAG " ") + kernel + "] internal error: " + e.what();
    throw_js(env, m.c_str());
  } catch (...) {
    std::string m = std::string("[" VERA_TAG " ") + kernel + "] internal error";
    throw_js(env, m.c_str());
  }
  return nullptr;
}

// KERNEL(Name, "jsName", { body using Args& a; returns a napi_value or nullptr })
#define KERNEL(NAME, JSNAME, ...)                                                \
  napi_value NAME(napi_env env, napi_callback_info info) {                      \
    return guarded(env, info, JSNAME, [&](Args & a) -> napi_value __VA_ARGS__); \
  }


inline double arg_number(Args& a, size_t i, const char* what) {
  double x = 0;
  if (i >= a.argc || napi_get_value_double(a.env, a.argv[i], &x) != napi_ok) fail(a.kernel, "%s must be a number", what);
  return x;
}


inline bool typed_array_matches(DType d, napi_typedarray_type t) {
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


inline napi_value string_array(napi_env env, const char* const* names, int n) {
  napi_value arr;
  napi_create_array_with_length(env, n, &arr);
  for (int i = 0; i < n; i++) {
    napi_value s;
    napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, i, s);
  }
  return arr;
}

inline void set_prop(napi_env env, napi_value obj, const char* name, napi_value v) { napi_set_named_property(env, obj, name, v); }

inline void finalize_instance(napi_env env, void* data, void*) {
  Instance* inst = static_cast<Instance*>(data);
  if (inst->desc_ref) napi_delete_reference(env, inst->desc_ref);
  delete inst;
}


// Creates the descriptor and the instance data; false (with a JS exception pending) on failure.
inline bool init_instance(napi_env env, napi_value& desc) {
  Instance* inst = new Instance();
  napi_value ab;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, kDescLen * sizeof(double), &data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, kDescLen, ab, 0, &desc) != napi_ok) {
    delete inst;
    napi_throw_error(env, nullptr, "[" VERA_TAG "] could not create the descriptor");
    return false;
  }
  inst->desc = static_cast<double*>(data);
  std::memset(inst->desc, 0, kDescLen * sizeof(double));
  napi_create_reference(env, desc, 1, &inst->desc_ref);
  napi_set_instance_data(env, inst, finalize_instance, nullptr);
  return true;
}

// Exports the descriptor, the name tables and the constants the binding reads.
inline void export_tables(napi_env env, napi_value exports, napi_value desc, napi_value names) {
  set_prop(env, exports, "descriptor", desc);
  set_prop(env, names, "dtype", string_array(env, kDTypeCodes, kNumDTypes));
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
}

}  // namespace vera
