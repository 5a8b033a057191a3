#!/usr/bin/env python3
"""PEFT adapters (VeRA and LoRA) on the tiny models of gen_models.py, with reference logits.

For each case: get_peft_model on a fixture base model, random values for the trainable parts
(VeRA's λ vectors start as an identity, LoRA's B as zero, which would test nothing), save_pretrained
to test/parity/fixtures/adapters/<name>/, then reload base + adapter from disk with
PeftModel.from_pretrained and record float32 logits unmerged, merged (merge_and_unload) and with the
adapter disabled. Also records bit patterns of VeRA projections for several (seed, r, in, out).

Run after gen_models.py, where torch, transformers and peft are installed:
  python3 test/parity/gen_adapters.py
The reverse direction (adapters and merged models written by vera-ts, from test/parity/ours.ts):
  python3 test/parity/gen_adapters.py --check-ours
  python3 test/parity/gen_adapters.py --bf16-merges   # PEFT's merges into bf16 weights (after the main run)
"""
import copy
import hashlib
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, VeraConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "fixtures", "models")
OUT = os.path.join(HERE, "fixtures", "adapters")
torch.set_grad_enabled(False)


def load_base(name, dtype=torch.float32):
    cls = getattr(transformers, json.load(open(os.path.join(MODELS, name, "refs.json")))["class"])
    try:
        model = cls.from_pretrained(os.path.join(MODELS, name), dtype=dtype)
    except TypeError:
        model = cls.from_pretrained(os.path.join(MODELS, name), torch_dtype=dtype)
    return model.eval()


def inputs_of(name):
    refs = json.load(open(os.path.join(MODELS, name, "refs.json")))
    out = {}
    for k, v in refs["inputs"].items():
        shape = refs["input_shapes"][k]
        out[k] = torch.tensor(v, dtype=torch.float32 if k == "pixel_values" else torch.long).view(shape)
    return out


def randomize(model, seed):
    """Non-trivial values for everything the adapter trains (and saves)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        noise = torch.randn(p.shape, generator=g)
        if "vera_lambda_d" in name:
            p.copy_(0.1 + 0.5 * noise)
        elif "vera_lambda_b" in name:
            p.copy_(0.5 * noise)
        elif "lora_B" in name:
            p.copy_(0.3 * noise)
        else:  # lora_A, modules_to_save copies, trainable biases
            p.add_(0.1 * noise)


def exact_rope(model):
    """Recomputes default RoPE frequencies in float32 (a bf16 model's .float() leaves them bf16-rounded)."""
    for mod in model.modules():
        if type(mod).__name__.endswith("RotaryEmbedding") and hasattr(mod, "inv_freq"):
            cfg = mod.config
            params = getattr(cfg, "rope_parameters", None) or {}
            assert params.get("rope_type", "default") == "default", "only default RoPE is recomputed here"
            theta = params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
            dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
            assert mod.inv_freq.shape == inv.shape
            mod.inv_freq = inv
            if hasattr(mod, "original_inv_freq"):
                mod.original_inv_freq = inv


def f32(t):
    return [float(v) for v in t.detach().float().flatten().tolist()]


def logits_of(model, inputs):
    return model(**inputs).logits.float()


CASES = [
    # name, base model, config factory, base dtype
    ("gpt2-vera", "gpt2-lm", lambda: VeraConfig(r=8, target_modules=["c_attn", "c_proj", "c_fc"], projection_prng_key=0), None),
    ("gpt2-lora-fan-in-fan-out", "gpt2-lm", lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True), None),
    ("gpt2-seqcls-lora", "gpt2-seqcls", lambda: LoraConfig(r=4, lora_alpha=16, target_modules=["c_attn", "c_proj"], task_type="SEQ_CLS"), None),
    ("llama-vera-seed-only", "llama-lm", lambda: VeraConfig(r=8, target_modules=["q_proj", "v_proj"], projection_prng_key=123, save_projection=False), None),
    ("llama-lora", "llama-lm", lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), None),
    ("llama-lora-rslora-all-linear", "llama-lm", lambda: LoraConfig(r=4, lora_alpha=16, use_rslora=True, target_modules="all-linear"), None),
    ("llama3-rope-vera-mlp", "llama3-rope-lm", lambda: VeraConfig(r=16, target_modules=["gate_proj", "up_proj", "down_proj"], projection_prng_key=7), None),
    ("llama-bf16-vera", "llama-tied-bf16", lambda: VeraConfig(r=8, target_modules=["q_proj", "v_proj"], projection_prng_key=5), torch.bfloat16),
    ("llama-bf16-vera-seed-only", "llama-tied-bf16", lambda: VeraConfig(r=8, target_modules=["q_proj", "v_proj"], projection_prng_key=5, save_projection=False), torch.bfloat16),
    ("llama-seqcls-vera", "llama-seqcls", lambda: VeraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS"), None),
    ("mistral-vera-regex", "mistral-lm", lambda: VeraConfig(r=8, target_modules=r".*\.(q_proj|o_proj)", projection_prng_key=2**32 + 3), None),
    ("qwen2-vera-layer1", "qwen2-lm", lambda: VeraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj"], layers_to_transform=[1], d_initial=0.5), None),
    ("bert-seqcls-vera", "bert-seqcls", lambda: VeraConfig(r=16, target_modules=["query", "value"], task_type="SEQ_CLS"), None),
    ("roberta-seqcls-vera-bias", "roberta-seqcls", lambda: VeraConfig(r=8, target_modules=["query", "value"], bias="vera_only", task_type="SEQ_CLS"), None),
    ("roberta-seqcls-lora", "roberta-seqcls", lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS"), None),
    ("vit-vera-head", "vit-imgcls", lambda: VeraConfig(r=16, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"]), None),
]


def projection_cases():
    """torch's bits for VeRA projections: A (r × in) drawn first, then B (out × r), one generator."""
    out = []
    for seed, r, n_in, n_out in [(0, 2, 4, 3), (7, 3, 17, 5), (42, 16, 100, 33), (2**31 + 5, 5, 9, 11), (123, 64, 257, 129), (0, 256, 768, 3072)]:
        g = torch.Generator(device="cpu").manual_seed(seed)
        tensors = []
        for shape in [(r, n_in), (n_out, r)]:
            t = torch.empty(shape)
            bound = (3.0 ** 0.5) * ((2.0 ** 0.5) / (shape[1] ** 0.5))
            t.uniform_(-bound, bound, generator=g)
            tensors.append(t)
        entry = {"seed": seed, "r": r, "in": n_in, "out": n_out}
        for key, t in zip(["A", "B"], tensors):
            raw = t.contiguous().numpy().tobytes()
            entry[f"{key}_sha256"] = hashlib.sha256(raw).hexdigest()
            if t.numel() <= 64:
                entry[f"{key}_hex"] = raw.hex()
        out.append(entry)
    # The same through PEFT itself, to check the recipe above is PEFT's.
    base = torch.nn.Sequential(torch.nn.Linear(4, 3))
    m = get_peft_model(base, VeraConfig(r=2, target_modules=["0"], projection_prng_key=0))
    a = m.base_model.vera_A["default"].contiguous().numpy().tobytes()
    assert hashlib.sha256(a).hexdigest() == out[0]["A_sha256"], "recipe differs from PEFT's"
    return out


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    manifest = {"generator": "test/parity/gen_adapters.py", "peft": peft.__version__, "transformers": transformers.__version__,
                "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cases": []}
    for i, (name, base_name, make_config, dtype) in enumerate(CASES):
        inputs = inputs_of(base_name)
        model = get_peft_model(load_base(base_name, dtype or torch.float32), make_config())
        randomize(model, 1000 + i)
        out_dir = os.path.join(OUT, name)
        model.save_pretrained(out_dir)
        # References come from what is on disk: a fresh base plus the saved adapter.
        fresh = PeftModel.from_pretrained(load_base(base_name, dtype or torch.float32), out_dir).eval()
        if dtype is not None:
            fresh.float()  # bf16 bases: compute in float32 from the bf16-valued weights
            exact_rope(fresh)
        refs = {"base": base_name, "adapted": f32(logits_of(fresh, inputs))}
        with fresh.disable_adapter():
            refs["disabled"] = f32(logits_of(fresh, inputs))
        # merge_adapter() rather than merge_and_unload(): the latter fails on RoBERTa's classification
        # head in modules_to_save (PEFT 0.21); the merged weights and outputs are the same.
        merged = copy.deepcopy(fresh)
        merged.merge_adapter()
        refs["merged"] = f32(logits_of(merged, inputs))
        refs["trainable_parameters"] = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
        refs["adapter_keys"] = sorted(torch_load_keys(os.path.join(out_dir, "adapter_model.safetensors")))
        if hasattr(fresh.base_model, "vera_A"):
            a = fresh.base_model.vera_A["default"].float().contiguous().numpy().tobytes()
            b = fresh.base_model.vera_B["default"].float().contiguous().numpy().tobytes()
            refs["vera_A_sha256"] = hashlib.sha256(a).hexdigest()
            refs["vera_B_sha256"] = hashlib.sha256(b).hexdigest()
            refs["vera_A_shape"] = list(fresh.base_model.vera_A["default"].shape)
            refs["vera_B_shape"] = list(fresh.base_model.vera_B["default"].shape)
        with open(os.path.join(out_dir, "refs.json"), "w") as f:
            json.dump(refs, f)
        manifest["cases"].append({"name": name, "base": base_name, "peft_type": make_config().peft_type.value})
        print(f"{name}: {refs['trainable_parameters']} trainable", file=sys.stderr)
    manifest["projections"] = projection_cases()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def check_ours():
    """Loads the adapters and merged models vera-ts wrote (test/parity/ours.ts) with PEFT/transformers and
    records whether they give vera-ts' logits, in fixtures/ours/peft-check.json."""
    ours_dir = os.path.join(HERE, "fixtures", "ours")
    ours = json.load(open(os.path.join(ours_dir, "ours.json")))
    results = []
    for case in ours["cases"]:
        name, base_name = case["name"], case["base"]
        bf16 = json.load(open(os.path.join(MODELS, base_name, "config.json"))).get("dtype") == "bfloat16"
        dtype = torch.bfloat16 if bf16 else torch.float32
        inputs = inputs_of(base_name)
        peft_model = PeftModel.from_pretrained(load_base(base_name, dtype), os.path.join(ours_dir, name)).eval()
        if bf16:
            peft_model.float()
            exact_rope(peft_model)
        entry = {"name": name, "adapted": compare(f32(logits_of(peft_model, inputs)), case["adapted"])}
        if case.get("merged") is not None:
            cls = getattr(transformers, json.load(open(os.path.join(MODELS, base_name, "refs.json")))["class"])
            merged = cls.from_pretrained(os.path.join(ours_dir, name + "-merged")).eval()
            entry["merged"] = compare(f32(logits_of(merged, inputs)), case["merged"])
        results.append(entry)
        print(f"{name}: {entry}", file=sys.stderr)
    with open(os.path.join(ours_dir, "peft-check.json"), "w") as f:
        json.dump({"checker": "test/parity/gen_adapters.py --check-ours", "peft": peft.__version__,
                   "transformers": transformers.__version__, "torch": torch.__version__, "cases": results}, f, indent=1)


def bf16_merges():
    """PEFT merging into bf16 weights (no float32 copy): for each bf16-base case, the merged and then the
    unmerged weights of every adapted layer, saved as fixtures/adapters/<case>/merged-bf16.safetensors."""
    from safetensors.torch import save_file

    for name, base_name, _, dtype in CASES:
        if dtype != torch.bfloat16:
            continue
        model = PeftModel.from_pretrained(load_base(base_name, dtype), os.path.join(OUT, name)).eval()
        layers = {n: m for n, m in model.base_model.model.named_modules() if hasattr(m, "base_layer")}
        out = {}
        model.merge_adapter()
        for n, m in layers.items():
            out[f"merged.{n}.weight"] = m.base_layer.weight.detach().clone().contiguous()
        model.unmerge_adapter()
        for n, m in layers.items():
            out[f"unmerged.{n}.weight"] = m.base_layer.weight.detach().clone().contiguous()
        save_file(out, os.path.join(OUT, name, "merged-bf16.safetensors"))
        print(f"{name}: {len(layers)} layers merged in bf16", file=sys.stderr)


def compare(theirs, ours):
    """Max absolute difference, and whether every element is within 1e-4 + 1e-4·|ours|."""
    diffs = [abs(a - b) for a, b in zip(theirs, ours)]
    ok = len(theirs) == len(ours) and all(d <= 1e-4 + 1e-4 * abs(b) for d, b in zip(diffs, ours))
    return {"max_abs_diff": max(diffs) if diffs else None, "ok": ok}


def torch_load_keys(path):
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return list(f.keys())


if __name__ == "__main__":
    if "--check-ours" in sys.argv:
        check_ours()
    elif "--bf16-merges" in sys.argv:
        bf16_merges()
    else:
        main()
