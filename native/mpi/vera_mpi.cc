// vera_mpi.node: the MPI collectives of data-parallel CPU training (src/train/distributed/mpi.ts), over
// the system's MPI (Open MPI from Debian's libopenmpi-dev). Plain N-API (C API), C++17; built by
// scripts/build-mpi.mjs only where mpicxx or the MPI headers are found.
//
// Every call runs on the JavaScript main thread (MPI_THREAD_FUNNELED is asked for), blocks until the
// collective completes, and works in place on the typed array it is given. Errors on MPI_COMM_WORLD
// keep MPI's default handler (MPI_ERRORS_ARE_FATAL): a failed collective aborts the whole job, and the
// launcher (mpirun) names the rank that failed or died.

#include <dlfcn.h>
#include <mpi.h>
#include <node_api.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool g_inited = false;
bool g_finalized = false;

napi_value throwError(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, ("[mpi] " + msg).c_str());
  return nullptr;
}

bool checkMpi(napi_env env, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return true;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throwError(env, std::string(what) + " failed: " + std::string(text, len));
  return false;
}

bool ready(napi_env env, const char* what) {
  if (!g_inited) {
    throwError(env, std::string(what) + ": MPI is not initialised (call init() first)");
    return false;
  }
  if (g_finalized) {
    throwError(env, std::string(what) + ": MPI was finalised");
    return false;
  }
  return true;
}

napi_value makeInt(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

napi_value makeBool(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

napi_value makeString(napi_env env, const std::string& s) {
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}

void setProp(napi_env env, napi_value obj, const char* key, napi_value v) { napi_set_named_property(env, obj, key, v); }

/** A typed array argument: its data, element count and MPI datatype. */
struct Typed {
  void* data = nullptr;
  size_t length = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  napi_typedarray_type kind = napi_uint8_array;
};

bool typedArg(napi_env env, napi_value v, Typed* out, const char* what) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    throwError(env, std::string(what) + ": expected a typed array");
    return false;
  }
  napi_value ab;
  size_t offset = 0;
  napi_get_typedarray_info(env, v, &out->kind, &out->length, &out->data, &ab, &offset);
  switch (out->kind) {
    case napi_float32_array:
      out->type = MPI_FLOAT;
      break;
    case napi_float64_array:
      out->type = MPI_DOUBLE;
      break;
    case napi_int32_array:
      out->type = MPI_INT32_T;
      break;
    case napi_uint8_array:
      out->type = MPI_UINT8_T;
      break;
    default:
      throwError(env, std::string(what) + ": only Float32Array, Float64Array, Int32Array and Uint8Array are supported");
      return false;
  }
  if (out->length > static_cast<size_t>(INT32_MAX)) {
    throwError(env, std::string(what) + ": more than 2^31-1 elements");
    return false;
  }
  return true;
}

bool intArg(napi_env env, napi_value v, int* out, const char* what) {
  int32_t x = 0;
  if (napi_get_value_int32(env, v, &x) != napi_ok) {
    throwError(env, std::string(what) + ": expected an integer");
    return false;
  }
  *out = x;
  return true;
}

bool stringArg(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len);
  napi_get_value_string_utf8(env, v, out->data(), len + 1, &len);
  return true;
}

std::vector<napi_value> args(napi_env env, napi_callback_info info, size_t want) {
  std::vector<napi_value> argv(want);
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr);
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  return argv;
}

bool isUndefined(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

/**
 * Open MPI opens its components with dlopen; they resolve libmpi's symbols globally, but node opens
 * addons with RTLD_LOCAL. Re-opening the already loaded library with RTLD_GLOBAL makes its symbols
 * visible to them (what mpi4py does for Python).
 */
void promoteLibMpi() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) != 0 && info.dli_fname != nullptr)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

// init() → { rank, size, threadLevel, library }
napi_value Init(napi_env env, napi_callback_info) {
  if (g_finalized) return throwError(env, "init: MPI was already finalised in this process");
  if (!g_inited) {
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
      promoteLibMpi();
      int provided = 0;
      int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      if (!checkMpi(env, rc, "MPI_Init_thread")) return nullptr;
    }
    g_inited = true;
  }
  int rank = 0, size = 1, provided = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Query_thread(&provided);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  std::string library(lib, strnlen(lib, static_cast<size_t>(len)));
  size_t nl = library.find_first_of("\r\n");
  if (nl != std::string::npos) library.resize(nl);
  napi_value out;
  napi_create_object(env, &out);
  setProp(env, out, "rank", makeInt(env, rank));
  setProp(env, out, "size", makeInt(env, size));
  setProp(env, out, "threadLevel", makeInt(env, provided));
  setProp(env, out, "library", makeString(env, library));
  return out;
}

// allreduce(array, op = 'sum' | 'max' | 'min'): in place on every rank.
napi_value Allreduce(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 2);
  if (!ready(env, "allreduce")) return nullptr;
  Typed t;
  if (!typedArg(env, argv[0], &t, "allreduce")) return nullptr;
  MPI_Op op = MPI_SUM;
  if (!isUndefined(env, argv[1])) {
    std::string name;
    if (!stringArg(env, argv[1], &name)) return throwError(env, "allreduce: op must be 'sum', 'max' or 'min'");
    if (name == "sum")
      op = MPI_SUM;
    else if (name == "max")
      op = MPI_MAX;
    else if (name == "min")
      op = MPI_MIN;
    else
      return throwError(env, "allreduce: op must be 'sum', 'max' or 'min', got '" + name + "'");
  }
  if (t.length == 0) return nullptr;
  int rc = MPI_Allreduce(MPI_IN_PLACE, t.data, static_cast<int>(t.length), t.type, op, MPI_COMM_WORLD);
  checkMpi(env, rc, "MPI_Allreduce");
  return nullptr;
}

// broadcast(array, root): root's elements into every rank's array (the same length everywhere).
napi_value Broadcast(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 2);
  if (!ready(env, "broadcast")) return nullptr;
  Typed t;
  if (!typedArg(env, argv[0], &t, "broadcast")) return nullptr;
  int root = 0;
  if (!isUndefined(env, argv[1]) && !intArg(env, argv[1], &root, "broadcast root")) return nullptr;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (root < 0 || root >= size)
    return throwError(env, "broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(size));
  if (t.length == 0) return nullptr;
  int rc = MPI_Bcast(t.data, static_cast<int>(t.length), t.type, root, MPI_COMM_WORLD);
  checkMpi(env, rc, "MPI_Bcast");
  return nullptr;
}

// allgather(bytes: Uint8Array) → Uint8Array[] (one per rank, in rank order; lengths may differ).
napi_value Allgather(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 1);
  if (!ready(env, "allgather")) return nullptr;
  Typed t;
  if (!typedArg(env, argv[0], &t, "allgather")) return nullptr;
  if (t.kind != napi_uint8_array) return throwError(env, "allgather: expected a Uint8Array");
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int mine = static_cast<int>(t.length);
  std::vector<int> counts(size), displs(size);
  int rc = MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  if (!checkMpi(env, rc, "MPI_Allgather")) return nullptr;
  int64_t total = 0;
  for (int i = 0; i < size; i++) {
    displs[i] = static_cast<int>(total);
    total += counts[i];
  }
  if (total > INT32_MAX) return throwError(env, "allgather: more than 2^31-1 bytes in all");
  std::vector<uint8_t> all(static_cast<size_t>(total) + 1);
  rc = MPI_Allgatherv(t.data, mine, MPI_UINT8_T, all.data(), counts.data(), displs.data(), MPI_UINT8_T,
                      MPI_COMM_WORLD);
  if (!checkMpi(env, rc, "MPI_Allgatherv")) return nullptr;
  napi_value out;
  napi_create_array_with_length(env, size, &out);
  for (int i = 0; i < size; i++) {
    void* data = nullptr;
    napi_value ab, arr;
    napi_create_arraybuffer(env, counts[i], &data, &ab);
    if (counts[i] > 0) std::memcpy(data, all.data() + displs[i], counts[i]);
    napi_create_typedarray(env, napi_uint8_array, counts[i], ab, 0, &arr);
    napi_set_element(env, out, i, arr);
  }
  return out;
}

napi_value Barrier(napi_env env, napi_callback_info) {
  if (!ready(env, "barrier")) return nullptr;
  checkMpi(env, MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  return nullptr;
}

napi_value Finalize(napi_env env, napi_callback_info) {
  if (g_inited && !g_finalized) {
    g_finalized = true;
    checkMpi(env, MPI_Finalize(), "MPI_Finalize");
  }
  return nullptr;
}

// abort(code, message?): prints the message on stderr, then ends every rank of the job (never returns).
napi_value Abort(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 2);
  int code = 1;
  if (!isUndefined(env, argv[0])) intArg(env, argv[0], &code, "abort code");
  std::string msg;
  if (!isUndefined(env, argv[1]) && stringArg(env, argv[1], &msg) && !msg.empty()) {
    fprintf(stderr, "%s\n", msg.c_str());
    fflush(stderr);
  }
  if (g_inited && !g_finalized) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);
  return nullptr;
}

napi_value State(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_object(env, &out);
  setProp(env, out, "initialized", makeBool(env, g_inited));
  setProp(env, out, "finalized", makeBool(env, g_finalized));
  return out;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allreduce", nullptr, Allreduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allgather", nullptr, Allgather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"barrier", nullptr, Barrier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"state", nullptr, State, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
