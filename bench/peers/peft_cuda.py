#!/usr/bin/env python3
"""PEFT peer for bench/cuda.ts: VeRA and LoRA training steps with PyTorch + transformers + PEFT on one
NVIDIA GPU, as issue 10's table measures them.

Each case builds a random-init model of a named shape in bf16 on the GPU, wraps it with PEFT (VeRA or
LoRA on the named modules), and times training steps under torch.autocast(bfloat16): forward with
labels (causal-LM cross-entropy), backward, AdamW step, zero_grad. Warm-up steps first, then the mean of
the timed steps (torch.cuda.synchronize around each), tokens/s = batch·seq / step time, and the peak
memory torch's allocator saw (torch.cuda.max_memory_allocated) over the timed steps.

Usage: python3 bench/peers/peft_cuda.py CASE [CASE...]   (CASE names below; `all` runs every one)
Generation cases (GEN_CASES) time transformers' greedy generate instead: the better of 2 runs after a warm-up.
Env: VERA_BENCH_STEPS (timed steps, default 10), VERA_BENCH_WARMUP (3).
Prints one JSON line per case: {"case", "tokens_per_s", "step_ms", "peak_gib", "gpu", "torch", "peft", ...}.
PEFT is not installed on the GPU host: pip install --no-deps --target DIR the 0.21 wheel and put DIR on
PYTHONPATH (scripts/gpu-host.sh does).
"""

import json
import os
import sys
import time

LLAMA_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096)
GPT2_MEDIUM = dict(n_embd=1024, n_layer=24, n_head=16, vocab_size=50257, n_positions=1024)
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name -> (family, shape, method, rank, targets, batch, seq, options)
CASES = {
    "llama7b-vera1024-all": ("llama", LLAMA_7B, "vera", 1024, ALL7, 4, 512, {}),
    "llama7b-lora64-all": ("llama", LLAMA_7B, "lora", 64, ALL7, 4, 512, {}),
    "llama7b-vera64-all": ("llama", LLAMA_7B, "vera", 64, ALL7, 4, 512, {}),
    "llama7b-vera1024-all-ckpt": ("llama", LLAMA_7B, "vera", 1024, ALL7, 4, 512, {"checkpointing": True}),
    "llama1b-vera256-qv": ("llama", LLAMA_1B, "vera", 256, ["q_proj", "v_proj"], 8, 1024, {}),
    "llama1b-lora16-qv": ("llama", LLAMA_1B, "lora", 16, ["q_proj", "v_proj"], 8, 1024, {}),
    "llama1b-vera256-qv-compile": ("llama", LLAMA_1B, "vera", 256, ["q_proj", "v_proj"], 8, 1024, {"compile": True}),
    "gpt2m-vera1024-cattn": ("gpt2", GPT2_MEDIUM, "vera", 1024, ["c_attn"], 16, 512, {}),
    "gpt2m-lora4-cattn": ("gpt2", GPT2_MEDIUM, "lora", 4, ["c_attn"], 16, 512, {}),
}


def build(family, shape, method, rank, targets, opts):
    import torch
    import transformers
    from peft import LoraConfig, VeraConfig, get_peft_model

    torch.manual_seed(0)
    if family == "llama":
        cfg = transformers.LlamaConfig(**shape)
        cfg._attn_implementation = "sdpa"
        cls = transformers.LlamaForCausalLM
    else:
        cfg = transformers.GPT2Config(**shape)
        cfg._attn_implementation = "sdpa"
        cls = transformers.GPT2LMHeadModel
    with torch.device("cuda"):
        model = cls(cfg).to(torch.bfloat16)
    if opts.get("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if method == "vera":
        pc = VeraConfig(r=rank, target_modules=targets, vera_dropout=0.0, init_weights=True)
    else:
        pc = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0)
    model = get_peft_model(model, pc)
    # Trainable adapter parameters in f32 (what autocast training keeps), frozen base in bf16.
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    return model


def run_case(name, steps, warmup):
    import torch

    family, shape, method, rank, targets, batch, seq, opts = CASES[name]
    torch.cuda.empty_cache()
    model = build(family, shape, method, rank, targets, opts)
    fwd = torch.compile(model) if opts.get("compile") else model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    vocab = shape["vocab_size"]
    g = torch.Generator(device="cuda").manual_seed(1)
    ids = torch.randint(0, vocab, (batch, seq), device="cuda", generator=g)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    ms = 1000 * sum(times) / len(times)
    row = {
        "case": name,
        "method": method,
        "rank": rank,
        "targets": targets,
        "batch": batch,
        "seq": seq,
        "step_ms": round(ms, 2),
        "tokens_per_s": round(batch * seq / (ms / 1000), 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "trainable": sum(p.numel() for p in params),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "peft": __import__("peft").__version__,
        "transformers": __import__("transformers").__version__,
        "options": opts,
    }
    del model, fwd, opt
    torch.cuda.empty_cache()
    return row


# name -> (shape, batch, prompt tokens, new tokens): greedy generation with transformers' generate.
GEN_CASES = {
    "llama1b-generate-b1": (LLAMA_1B, 1, 128, 128),
    "llama1b-generate-b32": (LLAMA_1B, 32, 128, 128),
}


def lcg_ids(vocab, n, seed):
    """bench/cuda.ts's tokenIds: the same prompts on both sides."""
    s, out = seed & 0xFFFFFFFF, []
    for _ in range(n):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((s >> 8) % vocab)
    return out


def run_generate(name):
    import torch
    import transformers

    shape, batch, prompt, new = GEN_CASES[name]
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**shape)
    cfg._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    ids = torch.tensor([lcg_ids(shape["vocab_size"], prompt, 7 + b) for b in range(batch)], device="cuda")
    mask = torch.ones_like(ids)

    def once():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        assert out.shape[1] == prompt + new, out.shape
        return time.perf_counter() - t0

    once()  # warm-up
    sec = min(once(), once())
    row = {"case": name, "batch": batch, "prompt": prompt, "new_tokens": new, "ms": round(1000 * sec, 2),
           "tokens_per_s": round(batch * new / sec, 1), "gpu": torch.cuda.get_device_name(),
           "torch": torch.__version__, "transformers": transformers.__version__}
    del model
    torch.cuda.empty_cache()
    return row


def main():
    names = sys.argv[1:] or ["all"]
    if names == ["all"]:
        names = list(CASES) + list(GEN_CASES)
    for n in names:
        if n not in CASES and n not in GEN_CASES:
            print(f"unknown case {n!r}; cases: {', '.join(list(CASES) + list(GEN_CASES))}", file=sys.stderr)
            return 2
    steps = int(os.environ.get("VERA_BENCH_STEPS", "10"))
    warmup = int(os.environ.get("VERA_BENCH_WARMUP", "3"))
    for n in names:
        row = run_generate(n) if n in GEN_CASES else run_case(n, steps, warmup)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
