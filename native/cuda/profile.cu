// A per-kernel profile of the cuda backend (VERA_CUDA_PROFILE=1): every exported call is bracketed by
// two CUDA events on the stream (device time) and a host clock (time spent in the call itself: argument
// checks, descriptor parsing, the launch), and labelled by its kernel name, its op for the op-coded
// kernels (binary.mul, unary.silu), or a label the kernel sets itself (matmul: its shape and dtype).
// profileReport() waits for the stream and returns the totals per label as JSON, then starts over.
// Off, it costs nothing: the hooks stay null.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../src/kernels.h"
#include "../src/napi_glue.h"
#include "device.cuh"

namespace vera {
namespace cu {
namespace {

struct Call {
  std::string label;
  cudaEvent_t start, stop;
  double host_us;
};

struct Profile {
  std::vector<Call> calls;
  std::vector<cudaEvent_t> free_events;
  Call current;
  bool open = false;
  std::chrono::steady_clock::time_point t0;
};

Profile& prof() {
  static Profile* p = new Profile();
  return *p;
}

cudaEvent_t take_event() {
  Profile& p = prof();
  if (!p.free_events.empty()) {
    cudaEvent_t e = p.free_events.back();
    p.free_events.pop_back();
    return e;
  }
  cudaEvent_t e;
  check(cudaEventCreate(&e), "profile", "cudaEventCreate");
  return e;
}

std::string op_label(const char* kernel, const double* d) {
  const int op = (int)d[0];
  auto pick = [&](const char* const* names, int n) {
    return std::string(kernel) + "." + (op >= 0 && op < n ? names[op] : "?");
  };
  if (!std::strcmp(kernel, "unary")) return pick(kUnaryNames, U_COUNT);
  if (!std::strcmp(kernel, "scalar")) return pick(kScalarNames, S_COUNT);
  if (!std::strcmp(kernel, "binary")) return pick(kBinaryNames, B_COUNT);
  if (!std::strcmp(kernel, "unaryGrad")) return pick(kUnaryGradNames, G_COUNT);
  if (!std::strcmp(kernel, "reduce")) return pick(kReduceNames, R_COUNT);
  return kernel;
}

void on_begin(const char* kernel, const double* d) {
  Profile& p = prof();
  p.current.label = op_label(kernel, d);
  p.current.start = take_event();
  p.current.stop = take_event();
  p.open = true;
  cudaEventRecord(p.current.start, stream());
  p.t0 = std::chrono::steady_clock::now();
}

void on_end() {
  Profile& p = prof();
  if (!p.open) return;
  p.current.host_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - p.t0).count();
  cudaEventRecord(p.current.stop, stream());
  p.calls.push_back(p.current);
  p.open = false;
}

const bool g_enabled = [] {
  const char* s = std::getenv("VERA_CUDA_PROFILE");
  const bool on = s && *s && std::strcmp(s, "0") != 0;
  if (on) {
    g_call_hooks.begin = on_begin;
    g_call_hooks.end = on_end;
  }
  return on;
}();

}  // namespace

bool profiling() { return g_enabled; }

void profile_label(const std::string& label) {
  if (g_enabled && prof().open) prof().current.label = label;
}

std::string profile_report() {
  if (!g_enabled) return "null";
  check(cudaStreamSynchronize(stream()), "profileReport", "a queued kernel failed");
  struct Sum {
    long long calls = 0;
    double gpu_ms = 0, host_ms = 0;
  };
  std::map<std::string, Sum> sums;
  Profile& p = prof();
  for (const Call& c : p.calls) {
    float ms = 0;
    cudaEventElapsedTime(&ms, c.start, c.stop);
    Sum& s = sums[c.label];
    s.calls++;
    s.gpu_ms += ms;
    s.host_ms += c.host_us / 1000;
    p.free_events.push_back(c.start);
    p.free_events.push_back(c.stop);
  }
  p.calls.clear();
  std::string out = "{";
  char buf[160];
  bool first = true;
  for (const auto& [label, s] : sums) {
    std::snprintf(buf, sizeof buf, "%s\"%s\":{\"calls\":%lld,\"gpuMs\":%.4f,\"hostMs\":%.4f}", first ? "" : ",", label.c_str(),
                  s.calls, s.gpu_ms, s.host_ms);
    out += buf;
    first = false;
  }
  return out + "}";
}

}  // namespace cu
}  // namespace vera
