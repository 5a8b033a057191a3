#!/usr/bin/python3
"""PyTorch peer for bench/generate.ts: greedy generation with a KV cache, GPT-2 and Llama in plain PyTorch.

transformers is not installed here (Debian's python3-torch 1.13 only), so this file holds what a
minimal PyTorch implementation needs: a safetensors reader (an 8-byte length, a JSON header, then one
readinto per tensor: no second copy of the file; bench/peers/torch_load.py uses it too) and functional
GPT-2 and Llama forwards written as transformers computes them (pre-LayerNorm GPT-2 with tanh GELU and
Conv1D [in, out] weights; Llama with RMSNorm, rotate-half RoPE, grouped-query attention, SiLU-gated MLP)
with a preallocated KV cache. Attention is explicit softmax(QKᵀ)V: torch 1.13 has no fused SDPA.

Usage: /usr/bin/python3 bench/peers/torch_generate.py THREADS MODEL_DIR DTYPE PROMPT NEW_TOKENS [PREFILL_RUNS=3]
  DTYPE  f32: weights widened to float32, float32 compute;
         bf16: weights and compute in bfloat16 (model.to(torch.bfloat16), oneDNN bf16 kernels).
  PROMPT comma-separated token ids (batch 1).
Prints one JSON line: {"torch", "blas", "prefill_tok_s", "decode_tok_s", "tokens", ...}. Prefill is
the median of PREFILL_RUNS forwards of the prompt into an empty cache (plus the argmax); decode is one
token per step, its rate 1 / the median step time (steps 1..NEW_TOKENS-1, each a forward of one token
and the argmax), as bench/generate.ts measures ours.
"""

import json
import math
import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt2_step import blas_summary, configure, debian_package  # noqa: E402


def read_safetensors(path, dtype):
    """{name: tensor} of a .safetensors file, each tensor read straight into torch memory and converted
    to `dtype` (a torch dtype) when stored in another one (one tensor's raw bytes are transient)."""
    import torch

    kinds = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
    out = {}
    with open(path, "rb", buffering=0) as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        start = 8 + n
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            begin, end = info["data_offsets"]
            raw = torch.empty(end - begin, dtype=torch.uint8)
            f.seek(start + begin)
            view = memoryview(raw.numpy())
            done = 0
            while done < len(view):
                got = f.readinto(view[done:])
                if not got:
                    raise IOError(f"{path}: short read in {name}")
                done += got
            t = raw.view(kinds[info["dtype"]]).reshape(info["shape"])
            out[name] = t if t.dtype == dtype else t.to(dtype)
    return out


def load(model_dir, dtype_name):
    """(config, weights) of a model directory; dtype_name 'f32' or 'bf16'."""
    import torch

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    dtype = torch.float32 if dtype_name == "f32" else torch.bfloat16
    return cfg, read_safetensors(os.path.join(model_dir, "model.safetensors"), dtype)


class KVCache:
    """Per layer, keys and values [B, H, capacity, D] filled in place (no torch.cat per step)."""

    def __init__(self, layers, b, h, d, capacity, dtype):
        import torch

        self.k = [torch.empty(b, h, capacity, d, dtype=dtype) for _ in range(layers)]
        self.v = [torch.empty(b, h, capacity, d, dtype=dtype) for _ in range(layers)]
        self.length = 0

    def update(self, layer, k, v):
        t = k.shape[2]
        self.k[layer][:, :, self.length : self.length + t] = k
        self.v[layer][:, :, self.length : self.length + t] = v
        end = self.length + t
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def attention(q, k, v, past):
    """softmax(q·kᵀ/√D + causal mask)·v for q [B, H, T, D] at positions past..past+T-1, k/v [B, H, Tk, D]."""
    import torch

    t, tk = q.shape[2], k.shape[2]
    att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if t > 1:
        mask = torch.ones(t, tk, dtype=torch.bool).triu(diagonal=1 + past)
        att = att.masked_fill(mask, float("-inf"))
    # transformers' eager attention: the softmax in float32, the product in the activations' dtype.
    return torch.matmul(torch.softmax(att, dim=-1, dtype=torch.float32).to(v.dtype), v)


def gpt2_forward(cfg, w, ids, cache):
    """Logits [B, 1, V] of the last position; appends the new keys/values to `cache`."""
    import torch
    import torch.nn.functional as F

    c, h = cfg["n_embd"], cfg["n_head"]
    d = c // h
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    b, t = ids.shape
    past = cache.length
    x = F.embedding(ids, w["transformer.wte.weight"]) + w["transformer.wpe.weight"][past : past + t]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        y = F.layer_norm(x, (c,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = torch.addmm(w[p + "attn.c_attn.bias"], y.view(-1, c), w[p + "attn.c_attn.weight"]).view(b, t, 3 * c)
        q, k, v = (z.view(b, t, h, d).transpose(1, 2) for z in qkv.split(c, dim=2))
        k, v = cache.update(i, k, v)
        y = attention(q, k, v, past).transpose(1, 2).reshape(b * t, c)
        x = x + torch.addmm(w[p + "attn.c_proj.bias"], y, w[p + "attn.c_proj.weight"]).view(b, t, c)
        y = F.layer_norm(x, (c,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps).view(-1, c)
        y = F.gelu(torch.addmm(w[p + "mlp.c_fc.bias"], y, w[p + "mlp.c_fc.weight"]), approximate="tanh")
        x = x + torch.addmm(w[p + "mlp.c_proj.bias"], y, w[p + "mlp.c_proj.weight"]).view(b, t, c)
    cache.length += t
    x = F.layer_norm(x[:, -1:], (c,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return F.linear(x, w.get("lm_head.weight", w["transformer.wte.weight"]))


def rms_norm(x, weight, eps):
    """transformers' LlamaRMSNorm: the statistics in float32, the weight applied in the input dtype."""
    import torch

    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def llama_forward(cfg, w, ids, cache):
    """Logits [B, 1, V] of the last position; appends the new keys/values to `cache`."""
    import torch
    import torch.nn.functional as F

    c, h, hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", c // h)
    eps = cfg["rms_norm_eps"]
    b, t = ids.shape
    past = cache.length
    x = F.embedding(ids, w["model.embed_tokens.weight"])
    # RoPE tables in float32 (as transformers' rotary embedding), then the activations' dtype.
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(past, past + t, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        y = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = F.linear(y, w[p + "self_attn.q_proj.weight"]).view(b, t, h, d).transpose(1, 2)
        k = F.linear(y, w[p + "self_attn.k_proj.weight"]).view(b, t, hkv, d).transpose(1, 2)
        v = F.linear(y, w[p + "self_attn.v_proj.weight"]).view(b, t, hkv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = cache.update(i, k, v)
        k = k.repeat_interleave(h // hkv, dim=1)
        v = v.repeat_interleave(h // hkv, dim=1)
        y = attention(q, k, v, past).transpose(1, 2).reshape(b, t, h * d)
        x = x + F.linear(y, w[p + "self_attn.o_proj.weight"])
        y = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        y = F.silu(F.linear(y, w[p + "mlp.gate_proj.weight"])) * F.linear(y, w[p + "mlp.up_proj.weight"])
        x = x + F.linear(y, w[p + "mlp.down_proj.weight"])
    cache.length += t
    x = rms_norm(x[:, -1:], w["model.norm.weight"], eps)
    return F.linear(x, w.get("lm_head.weight", w["model.embed_tokens.weight"]))


def new_cache(cfg, capacity, dtype):
    if cfg["model_type"] == "gpt2":
        return KVCache(cfg["n_layer"], 1, cfg["n_head"], cfg["n_embd"] // cfg["n_head"], capacity, dtype)
    d = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    return KVCache(cfg["num_hidden_layers"], 1, cfg["num_key_value_heads"], d, capacity, dtype)


def main():
    threads = int(sys.argv[1])
    model_dir, dtype_name, prompt_arg = sys.argv[2], sys.argv[3], sys.argv[4]
    new_tokens = int(sys.argv[5])
    prefill_runs = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    configure(threads)

    import torch

    torch.set_num_threads(threads)
    prompt = [int(x) for x in prompt_arg.split(",")]
    cfg, w = load(model_dir, dtype_name)
    dtype = torch.float32 if dtype_name == "f32" else torch.bfloat16
    forward = gpt2_forward if cfg["model_type"] == "gpt2" else llama_forward
    ids = torch.tensor([prompt], dtype=torch.int64)
    capacity = len(prompt) + new_tokens

    with torch.inference_mode():
        prefill_s = []
        for _ in range(prefill_runs + 1):  # the first run warms up allocators and kernels
            cache = new_cache(cfg, capacity, dtype)
            t0 = time.perf_counter()
            token = int(forward(cfg, w, ids, cache)[0, -1].float().argmax())
            prefill_s.append(time.perf_counter() - t0)
        tokens = [token]
        steps = []
        for _ in range(new_tokens - 1):
            t0 = time.perf_counter()
            token = int(forward(cfg, w, torch.tensor([[token]], dtype=torch.int64), cache)[0, -1].float().argmax())
            steps.append(time.perf_counter() - t0)
            tokens.append(token)

    prefill = statistics.median(prefill_s[1:])
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "torch_package": debian_package("python3-torch"),
                "blas": blas_summary(torch),
                "mkldnn": torch.backends.mkldnn.is_available(),
                "threads": threads,
                "dtype": dtype_name,
                "prompt_tokens": len(prompt),
                "prefill_s": round(prefill, 4),
                "prefill_samples_s": [round(s, 4) for s in prefill_s[1:]],
                "prefill_tok_s": len(prompt) / prefill,
                "decode_step_median_s": round(statistics.median(steps), 5) if steps else None,
                "decode_tok_s": 1.0 / statistics.median(steps) if steps else None,
                "decode_mean_tok_s": len(steps) / sum(steps) if steps else None,
                "tokens": tokens,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
