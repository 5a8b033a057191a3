// cuDNN's fused flash attention (attention_cudnn.cc) as attention.cu calls it: plain host types, so
// that file needs neither cuDNN's headers nor the frontend's.
#pragma once
#include <cstdint>
#include <string>

namespace vera {
namespace attn {

// One call's shapes and operands. q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D], bf16, last stride 1;
// strides are (batch, time, head) in elements. Query i sits at position i + (Tk − Tq).
struct CudnnCall {
  int64_t b, tq, tk, hq, hkv, d;
  const void *q, *k, *v;
  int64_t qs[3], ks[3], vs[3];
  bool causal;
  int64_t window;  // 0 = none
  float scale;
};

// The forward through cuDNN: out [B, Tq, Hq, D] bf16 contiguous, lse [B, Hq, Tq] f32. False (nothing
// written) when cuDNN is absent, turned off (VERA_CUDA_ATTENTION=own) or cannot take this call; the
// caller then runs its own kernel.
bool cudnn_forward(const CudnnCall& c, void* out, float* lse, const char* kn);
// The backward: dq, dk, dv contiguous in the forward input shapes; out contiguous, dout strided
// (batch, time, head) like q; lse as the forward wrote it (ours or cuDNN's: both are the natural
// log-sum-exp of the scaled, masked scores). False when the caller must run its own kernels.
bool cudnn_backward(const CudnnCall& c, const void* out, const void* dout, const int64_t dos[3], const float* lse,
                    void* dq, void* dk, void* dv, const char* kn);
// JSON: {"built": bool, "version": cuDNN's (0 when not loaded), "forward": calls taken, "backward": …,
// "declined": calls cuDNN could not take, "reason": the last decline's message}.
std::string cudnn_info();

}  // namespace attn
}  // namespace vera
