// cuDNN's fused flash attention for bf16 views with lowPrecision: scaled dot-product attention
// through cuDNN 9's graph API, the graphs built with NVIDIA's header-only cudnn-frontend (its sdpa and
// sdpa_backward nodes). attention.cu tries it first and runs its own tensor-core kernels when this
// declines: cuDNN not built in or not loadable, VERA_CUDA_ATTENTION=own, or a call outside what is
// mapped here (dropout — cuDNN's RNG is not our Philox stream —, a key mask, a window without causal,
// causal with Tq > Tk — rows with no visible key —, a head size not a multiple of 8 or above 128,
// strides or addresses not 16-byte aligned) or that cuDNN's heuristics cannot serve.
//
// Masks: ours keeps key j for query i when j ≤ i + (Tk − Tq) (causal) and (i + Tk − Tq) − j < window;
// that is cuDNN's diagonal band aligned bottom-right with right bound 0 and left bound `window`.
// Grouped-query heads (Hkv < Hq) are native to cuDNN's graph, dK and dV summed over each group.
// The backward is built deterministic (no atomics in dQ) so that a resumed run repeats itself.
//
// Graphs are built once per shape/stride/mask signature (building takes 10–500 ms) and kept;
// the workspace comes from scratch slot 3, valid until the next call that uses that slot, as every
// user is queued on the one stream.
#include "attention_cudnn.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <cuda_runtime.h>

#include "../src/common.h"

#ifdef VERA_CUDNN
#include <cudnn.h>

#include <cudnn_frontend.h>
#include <memory>
#include <unordered_map>
#endif

namespace vera {
namespace cu {
// device.cuh's (which this host-only C++ file cannot include: it holds device code).
cudaStream_t stream();
void* scratch(size_t bytes, int slot);
bool profiling();
void profile_label(const std::string& label);
}  // namespace cu

namespace attn {

#ifndef VERA_CUDNN

bool cudnn_forward(const CudnnCall&, void*, float*, const char*) { return false; }
bool cudnn_backward(const CudnnCall&, const void*, const void*, const int64_t*, const float*, void*, void*, void*,
                    const char*) {
  return false;
}
std::string cudnn_info() { return "{\"built\":false,\"version\":0,\"forward\":0,\"backward\":0,\"declined\":0}"; }

#else

namespace {

struct Stats {
  long long forward = 0, backward = 0, declined = 0;
  std::string reason;
};
Stats& stats() {
  static Stats s;
  return s;
}

// Read per call (a test compares both paths in one process).
bool turned_off() {
  const char* e = std::getenv("VERA_CUDA_ATTENTION");
  return e && std::strcmp(e, "own") == 0;
}

// Why this call is outside the mapping, or null when cuDNN may try it.
const char* outside(const CudnnCall& c) {
  if (c.d % 8 != 0 || c.d > 128 || c.d <= 0) return "head size not a multiple of 8 in 8..128";
  if (c.window > 0 && !c.causal) return "a window without causal";
  if (c.causal && c.tq > c.tk) return "causal with more queries than keys";
  const void* ptrs[] = {c.q, c.k, c.v};
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return "an operand not 16-byte aligned";
  const int64_t* strides[] = {c.qs, c.ks, c.vs};
  for (const int64_t* s : strides)
    for (int i = 0; i < 3; i++)
      if (s[i] % 8 != 0) return "a stride not a multiple of 8 elements";
  return nullptr;
}

void decline(const std::string& why) {
  Stats& s = stats();
  s.declined++;
  s.reason = why;
}

}  // namespace

namespace fe = cudnn_frontend;

namespace {

enum Uid : int64_t { Q = 1, K, V, O, LSE, DO, DQ, DK, DV };

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t x = nullptr;
    if (cudnnCreate(&x) != CUDNN_STATUS_SUCCESS) return (cudnnHandle_t) nullptr;
    return x;
  }();
  return h;
}

// cuDNN's dims (B, H, S, D) and strides for a [B, T, H, D] view with (batch, time, head) strides.
std::shared_ptr<fe::graph::Tensor_attributes> head_tensor(fe::graph::Graph& g, const char* name, int64_t uid,
                                                            int64_t b, int64_t h, int64_t t, int64_t d,
                                                            const int64_t s[3]) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({b, h, t, d})
                      .set_stride({s[0], s[2], s[1], 1})
                      .set_data_type(fe::DataType_t::BFLOAT16));
}

void contiguous_strides(int64_t t, int64_t h, int64_t d, int64_t out[3]) {
  out[0] = t * h * d;
  out[1] = h * d;
  out[2] = d;
}

struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN declined this signature
  int64_t workspace = 0;
  std::string why;
};

std::string signature(const CudnnCall& c, bool backward, const int64_t* dos) {
  std::string s = backward ? "b" : "f";
  const int64_t v[] = {c.b, c.tq, c.tk, c.hq, c.hkv, c.d, c.qs[0], c.qs[1], c.qs[2], c.ks[0], c.ks[1], c.ks[2],
                       c.vs[0], c.vs[1], c.vs[2], c.causal ? 1 : 0, c.window};
  for (int64_t x : v) s += ":" + std::to_string(x);
  if (dos) s += ":" + std::to_string(dos[0]) + ":" + std::to_string(dos[1]) + ":" + std::to_string(dos[2]);
  uint32_t bits;
  std::memcpy(&bits, &c.scale, 4);
  return s + ":" + std::to_string(bits);
}

template <class A>
void set_masks(A& a, const CudnnCall& c) {
  if (c.causal) a.set_causal_mask_bottom_right(true);
  if (c.window > 0) a.set_sliding_window_length((int)c.window);
}

std::string finish(fe::graph::Graph& g, Plan& p) {
  cudnnHandle_t h = handle();
  if (!h) return "cudnnCreate failed";
  auto e = g.validate();
  if (e.is_good()) e = g.build_operation_graph(h);
  if (e.is_good()) e = g.create_execution_plans({fe::HeurMode_t::A});
  if (e.is_good()) e = g.check_support(h);
  if (e.is_good()) e = g.build_plans(h);
  if (e.is_good()) e = g.get_workspace_size(p.workspace);
  return e.is_good() ? std::string() : e.get_message();
}

Plan build_forward(const CudnnCall& c) {
  Plan p;
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto q = head_tensor(*g, "Q", Q, c.b, c.hq, c.tq, c.d, c.qs);
  auto k = head_tensor(*g, "K", K, c.b, c.hkv, c.tk, c.d, c.ks);
  auto v = head_tensor(*g, "V", V, c.b, c.hkv, c.tk, c.d, c.vs);
  auto a = fe::graph::SDPA_attributes().set_name("attention").set_generate_stats(true).set_attn_scale(c.scale);
  set_masks(a, c);
  auto [o, lse] = g->sdpa(q, k, v, a);
  int64_t os[3];
  contiguous_strides(c.tq, c.hq, c.d, os);
  o->set_output(true).set_uid(O).set_dim({c.b, c.hq, c.tq, c.d}).set_stride({os[0], os[2], os[1], 1});
  lse->set_output(true)
      .set_uid(LSE)
      .set_data_type(fe::DataType_t::FLOAT)
      .set_dim({c.b, c.hq, c.tq, 1})
      .set_stride({c.hq * c.tq, c.tq, 1, 1});
  p.why = finish(*g, p);
  if (p.why.empty()) p.graph = g;
  return p;
}

Plan build_backward(const CudnnCall& c, const int64_t dos[3]) {
  Plan p;
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  int64_t os[3], ks[3];
  contiguous_strides(c.tq, c.hq, c.d, os);
  contiguous_strides(c.tk, c.hkv, c.d, ks);
  auto q = head_tensor(*g, "Q", Q, c.b, c.hq, c.tq, c.d, c.qs);
  auto k = head_tensor(*g, "K", K, c.b, c.hkv, c.tk, c.d, c.ks);
  auto v = head_tensor(*g, "V", V, c.b, c.hkv, c.tk, c.d, c.vs);
  auto o = head_tensor(*g, "O", O, c.b, c.hq, c.tq, c.d, os);
  auto dout = head_tensor(*g, "dO", DO, c.b, c.hq, c.tq, c.d, dos);
  auto lse = g->tensor(fe::graph::Tensor_attributes()
                           .set_name("LSE")
                           .set_uid(LSE)
                           .set_dim({c.b, c.hq, c.tq, 1})
                           .set_stride({c.hq * c.tq, c.tq, 1, 1})
                           .set_data_type(fe::DataType_t::FLOAT));
  auto a = fe::graph::SDPA_backward_attributes().set_name("attention_backward").set_attn_scale(c.scale);
  a.set_deterministic_algorithm(std::getenv("VERA_CUDA_ATTENTION_NONDETERMINISTIC") == nullptr);
  set_masks(a, c);
  auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, lse, a);
  dq->set_output(true).set_uid(DQ).set_dim({c.b, c.hq, c.tq, c.d}).set_stride({os[0], os[2], os[1], 1});
  dk->set_output(true).set_uid(DK).set_dim({c.b, c.hkv, c.tk, c.d}).set_stride({ks[0], ks[2], ks[1], 1});
  dv->set_output(true).set_uid(DV).set_dim({c.b, c.hkv, c.tk, c.d}).set_stride({ks[0], ks[2], ks[1], 1});
  p.why = finish(*g, p);
  if (p.why.empty()) p.graph = g;
  return p;
}

// The plan for this signature, built on first use; null graph when cuDNN declined it.
const Plan& plan_for(const CudnnCall& c, const int64_t* dos) {
  static std::unordered_map<std::string, Plan> plans;
  const std::string key = signature(c, dos != nullptr, dos);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  Plan p;
  try {
    p = dos ? build_backward(c, dos) : build_forward(c);
  } catch (const std::exception& e) {
    p = Plan{nullptr, 0, e.what()};
  }
  return plans.emplace(key, std::move(p)).first->second;
}

bool run(const Plan& p, std::unordered_map<int64_t, void*>& pack, const char* kn) {
  cudnnHandle_t h = handle();
  if (cudnnSetStream(h, cu::stream()) != CUDNN_STATUS_SUCCESS) {
    decline("cudnnSetStream failed");
    return false;
  }
  void* ws = p.workspace > 0 ? cu::scratch((size_t)p.workspace, 3) : nullptr;
  auto e = p.graph->execute(h, pack, ws);
  if (!e.is_good()) fail(kn, "cuDNN attention failed: %s", e.get_message().c_str());
  return true;
}

bool usable(const CudnnCall& c) {
  if (turned_off()) return false;
  if (const char* why = outside(c)) {
    decline(why);
    return false;
  }
  return handle() != nullptr;
}

}  // namespace

bool cudnn_forward(const CudnnCall& c, void* out, float* lse, const char* kn) {
  if (!usable(c)) return false;
  const Plan& p = plan_for(c, nullptr);
  if (!p.graph) {
    decline(p.why);
    return false;
  }
  std::unordered_map<int64_t, void*> pack = {{Q, const_cast<void*>(c.q)}, {K, const_cast<void*>(c.k)},
                                             {V, const_cast<void*>(c.v)}, {O, out},
                                             {LSE, lse}};
  if (!run(p, pack, kn)) return false;
  stats().forward++;
  if (cu::profiling()) cu::profile_label("attention (bf16, cuDNN)");
  return true;
}

bool cudnn_backward(const CudnnCall& c, const void* out, const void* dout, const int64_t dos[3], const float* lse,
                    void* dq, void* dk, void* dv, const char* kn) {
  if (!usable(c)) return false;
  for (int i = 0; i < 3; i++)
    if (dos[i] % 8 != 0) {
      decline("a stride of dout not a multiple of 8 elements");
      return false;
    }
  if (reinterpret_cast<uintptr_t>(dout) % 16 != 0) {
    decline("dout not 16-byte aligned");
    return false;
  }
  const Plan& p = plan_for(c, dos);
  if (!p.graph) {
    decline(p.why);
    return false;
  }
  std::unordered_map<int64_t, void*> pack = {
      {Q, const_cast<void*>(c.q)}, {K, const_cast<void*>(c.k)},      {V, const_cast<void*>(c.v)},
      {O, const_cast<void*>(out)}, {DO, const_cast<void*>(dout)},    {LSE, const_cast<float*>(lse)},
      {DQ, dq},                    {DK, dk},                         {DV, dv}};
  if (!run(p, pack, kn)) return false;
  stats().backward++;
  if (cu::profiling()) cu::profile_label("attentionBackward (bf16, cuDNN)");
  return true;
}

std::string cudnn_info() {
  const Stats& s = stats();
  std::string reason;
  for (char ch : s.reason) {
    if (ch == '"' || ch == '\\') reason += '\\';
    if ((unsigned char)ch >= 0x20) reason += ch;
  }
  return "{\"built\":true,\"version\":" + std::to_string(handle() ? cudnnGetVersion() : 0) +
         ",\"forward\":" + std::to_string(s.forward) + ",\"backward\":" + std::to_string(s.backward) +
         ",\"declined\":" + std::to_string(s.declined) + ",\"reason\":\"" + reason + "\"}";
}

#endif

}  // namespace attn
}  // namespace vera
