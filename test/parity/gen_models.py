#!/usr/bin/env python3
"""Tiny random Hugging Face models of every supported family and head, with reference outputs.

For each case this writes test/parity/fixtures/models/<name>/ holding what save_pretrained writes
(config.json, model.safetensors) and refs.json: the inputs, float32 logits computed by transformers
on the CPU, and for causal LMs 20 greedy tokens (recomputed with full forwards, with each step's
margin between the two best logits so a test can tell a real mismatch from a near-tie).
Weights are re-drawn at a scale that makes activations O(1), so the references discriminate.

Also writes test/parity/fixtures/models/manifest.json (cases, transformers/torch versions, and the
state-dict key names each class uses, which differ across transformers versions for ViT).

Run where torch and transformers are installed:  python3 test/parity/gen_models.py [--only name,name]
"""
import json
import math
import os
import shutil
import sys

import torch
import transformers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "models")
torch.set_grad_enabled(False)


def redraw(model, seed):
    """Weights at scale 1/sqrt(fan_in) (embeddings 1), biases 0.1, norm weights 1 ± 0.1."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda p: torch.randn(p.shape, generator=g)
    for _, mod in model.named_modules():
        kind = type(mod).__name__
        for pname, p in mod.named_parameters(recurse=False):
            if p.dim() == 1:
                p.copy_(1 + 0.1 * rand(p) if "Norm" in kind and pname == "weight" else 0.1 * rand(p))
            elif isinstance(mod, torch.nn.Embedding) or p.dim() == 3:  # embeddings, ViT's cls/position
                p.copy_(rand(p))
            else:
                fan_in = p.shape[0] if kind == "Conv1D" else p[0].numel()  # GPT-2's Conv1D is [in, out]
                p.copy_(rand(p) / math.sqrt(fan_in))


def f32(t):
    return [float(v) for v in t.detach().float().flatten().tolist()]


def ints(t):
    return [int(v) for v in t.flatten().tolist()]


def greedy(model, ids, steps=20):
    """Greedy continuation by full forwards; returns tokens and the top-2 margin of each step."""
    tokens, margins = [], []
    cur = ids
    for _ in range(steps):
        logits = model(input_ids=cur).logits[0, -1]
        top = torch.topk(logits, 2)
        tokens.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        cur = torch.cat([cur, top.indices[:1].view(1, 1)], dim=1)
    return tokens, margins


def save_case(name, model, inputs, extra, cls_name, dtype=None):
    if ONLY and name not in ONLY:
        return None
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    to_save = model.to(dtype) if dtype is not None else model
    to_save.save_pretrained(out, safe_serialization=True)
    if dtype is not None:
        # References in float32 from the bf16 weights: reload from disk, so buffers the file does not
        # hold (RoPE's inv_freq) are computed in float32 rather than left bf16-rounded by .to(bf16).
        try:
            model = type(model).from_pretrained(out, dtype=torch.float32).eval()
        except TypeError:
            model = type(model).from_pretrained(out, torch_dtype=torch.float32).eval()
    refs = {"class": cls_name, "inputs": {k: ints(v) if not v.is_floating_point() else f32(v) for k, v in inputs.items()}}
    refs["input_shapes"] = {k: list(v.shape) for k, v in inputs.items()}
    logits = model(**inputs).logits
    refs["logits"] = f32(logits)
    refs["logits_shape"] = list(logits.shape)
    refs.update(extra(model) if extra else {})
    with open(os.path.join(out, "refs.json"), "w") as f:
        json.dump(refs, f)
    keys = sorted(k for k in model.state_dict().keys())
    return {"name": name, "class": cls_name, "dir": name, "keys": keys}


def text_inputs(vocab, pad_right_id=None, with_types=False, seed=0):
    g = torch.Generator().manual_seed(100 + seed)
    ids = torch.randint(3, vocab, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # the second row is right-padded
    if pad_right_id is not None:
        ids[1, 5:] = pad_right_id
    inputs = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        tt = torch.zeros(2, 7, dtype=torch.long)
        tt[:, 4:] = 1
        inputs["token_type_ids"] = tt
    return inputs


def causal_extra(model):
    prompt = torch.tensor([[5, 17, 42, 8]])
    tokens, margins = greedy(model, prompt)
    return {"greedy_prompt": ints(prompt), "greedy_tokens": tokens, "greedy_margins": margins}


def main():
    os.makedirs(ROOT, exist_ok=True)
    torch.manual_seed(0)
    cases = []
    V = 128

    def build(cls, cfg, seed):
        cfg._attn_implementation = "eager"
        torch.manual_seed(seed)
        m = cls(cfg).eval()
        redraw(m, seed)
        return m

    # ---- GPT-2 ----------------------------------------------------------------------------------
    gpt2 = dict(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    m = build(GPT2LMHeadModel, GPT2Config(**gpt2), 1)
    cases.append(save_case("gpt2-lm", m, text_inputs(V), causal_extra, "GPT2LMHeadModel"))
    m = build(GPT2ForSequenceClassification, GPT2Config(**gpt2, num_labels=3, pad_token_id=0), 2)
    cases.append(save_case("gpt2-seqcls", m, text_inputs(V, pad_right_id=0), None, "GPT2ForSequenceClassification"))

    # ---- Llama family -----------------------------------------------------------------------------
    llama = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False)
    m = build(LlamaForCausalLM, LlamaConfig(**llama, rope_theta=10000.0), 3)
    cases.append(save_case("llama-lm", m, text_inputs(V), causal_extra, "LlamaForCausalLM"))
    llama3_scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16}
    try:
        cfg = LlamaConfig(**llama, rope_theta=500000.0, rope_scaling=llama3_scaling)
    except TypeError:
        cfg = LlamaConfig(**llama, rope_parameters={"rope_theta": 500000.0, **llama3_scaling})
    m = build(LlamaForCausalLM, cfg, 4)
    cases.append(save_case("llama3-rope-lm", m, text_inputs(V), causal_extra, "LlamaForCausalLM"))
    # YaRN (Qwen2.5's long-context setting, DeepSeek's): scaled frequencies and an attention factor; the
    # greedy continuation runs past original_max_position_embeddings.
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 8.0, "beta_slow": 1.0}
    try:
        cfg = LlamaConfig(**llama, rope_theta=10000.0, rope_scaling=yarn)
    except TypeError:
        cfg = LlamaConfig(**llama, rope_parameters={"rope_theta": 10000.0, **yarn})
    m = build(LlamaForCausalLM, cfg, 12)
    cases.append(save_case("llama-yarn-lm", m, text_inputs(V), causal_extra, "LlamaForCausalLM"))
    m = build(LlamaForCausalLM, LlamaConfig(**{**llama, "tie_word_embeddings": True}), 5)
    cases.append(save_case("llama-tied-bf16", m, text_inputs(V), causal_extra, "LlamaForCausalLM", dtype=torch.bfloat16))
    m = build(LlamaForSequenceClassification, LlamaConfig(**llama, num_labels=2, pad_token_id=0), 6)
    cases.append(save_case("llama-seqcls", m, text_inputs(V, pad_right_id=0), None, "LlamaForSequenceClassification"))
    mistral = {k: v for k, v in llama.items()}
    m = build(MistralForCausalLM, MistralConfig(**mistral, sliding_window=3), 7)
    cases.append(save_case("mistral-lm", m, text_inputs(V), causal_extra, "MistralForCausalLM"))
    m = build(Qwen2ForCausalLM, Qwen2Config(**llama), 8)
    cases.append(save_case("qwen2-lm", m, text_inputs(V), causal_extra, "Qwen2ForCausalLM"))

    # ---- BERT / RoBERTa ---------------------------------------------------------------------------
    bert = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    m = build(BertForSequenceClassification, BertConfig(**bert, num_labels=2), 9)
    cases.append(save_case("bert-seqcls", m, text_inputs(V, pad_right_id=0, with_types=True), None, "BertForSequenceClassification"))
    m = build(RobertaForSequenceClassification, RobertaConfig(**{**bert, "type_vocab_size": 1}, num_labels=3, pad_token_id=1), 10)
    cases.append(save_case("roberta-seqcls", m, text_inputs(V, pad_right_id=1), None, "RobertaForSequenceClassification"))

    # ---- ViT --------------------------------------------------------------------------------------
    vit = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    m = build(ViTForImageClassification, vit, 11)
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(12))
    cases.append(save_case("vit-imgcls", m, {"pixel_values": pixels}, None, "ViTForImageClassification"))

    cases = [c for c in cases if c is not None]
    if ONLY:
        # Only some cases were written: keep the manifest's others, in their order.
        old = json.load(open(os.path.join(ROOT, "manifest.json")))["cases"]
        new = {c["name"]: c for c in cases}
        cases = [new.pop(c["name"], c) for c in old] + list(new.values())
    manifest = {
        "generator": "test/parity/gen_models.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "cases": cases,
    }
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(cases)} model cases with transformers {transformers.__version__}", file=sys.stderr)


# `--only a,b`: write only these cases (the others and their manifest entries stay as they are).
ONLY = set(sys.argv[sys.argv.index("--only") + 1].split(",")) if "--only" in sys.argv else set()

if __name__ == "__main__":
    main()
