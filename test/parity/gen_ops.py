#!/usr/bin/env python3
"""Reference outputs and gradients of single ops, computed by PyTorch in float64.

Writes test/parity/fixtures/ops.json, read by test/parity/ops.test.ts. Each case holds the inputs,
the forward output and the gradient of sum(output * upstream) with respect to every float input.
Layouts follow vera-ts where they differ from torch's (attention is [B, T, H, D]; rope tables hold
each angle once), and the conversions are spelled out below.

Run: python3 test/parity/gen_ops.py   (any PyTorch >= 1.13; Debian's python3-torch works)
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
DT = torch.float64
cases = []


def rand(*shape, scale=1.0, positive=False):
    t = (torch.rand(tuple(shape), dtype=DT) * 2 - 1) * scale
    return t.abs() + 0.5 if positive else t


def enc(t):
    if t.dtype == torch.bool:
        return {"shape": list(t.shape), "dtype": "bool", "data": [int(v) for v in t.flatten().tolist()]}
    if t.dtype in (torch.int32, torch.int64):
        return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "f64", "data": t.detach().flatten().tolist()}


def case(name, op, fn, inputs, attrs=None, grad=True):
    """inputs: dict name -> tensor (float tensors get gradients)."""
    leaves = {k: (v.clone().requires_grad_(grad) if v.is_floating_point() else v) for k, v in inputs.items()}
    out = fn(**leaves)
    entry = {"name": name, "op": op, "attrs": attrs or {}, "inputs": {k: enc(v) for k, v in inputs.items()}, "out": enc(out)}
    if grad and out.is_floating_point():
        up = rand(*out.shape)
        (out * up).sum().backward()
        entry["upstream"] = enc(up)
        entry["grads"] = {k: enc(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items() if v.is_floating_point()}
    cases.append(entry)


# ---- elementwise -------------------------------------------------------------------------------
x = rand(3, 7, scale=3)
for op, fn in [
    ("neg", torch.neg), ("exp", torch.exp), ("sin", torch.sin), ("cos", torch.cos), ("tanh", torch.tanh),
    ("sigmoid", torch.sigmoid), ("relu", F.relu), ("gelu", lambda a: F.gelu(a)),
    ("geluTanh", lambda a: F.gelu(a, approximate="tanh")), ("silu", F.silu), ("square", torch.square), ("abs", torch.abs),
]:
    case(op, op, lambda a, fn=fn: fn(a), {"a": x})
p = rand(3, 7, positive=True)
for op, fn in [("log", torch.log), ("sqrt", torch.sqrt), ("rsqrt", torch.rsqrt), ("reciprocal", torch.reciprocal)]:
    case(op, op, lambda a, fn=fn: fn(a), {"a": p})

a, b = rand(2, 3, 4), rand(3, 1)
for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("maximum", torch.maximum), ("minimum", torch.minimum)]:
    case(op, op, lambda a, b, fn=fn: fn(a, b), {"a": a, "b": b})
case("div", "div", lambda a, b: a / b, {"a": a, "b": rand(4, positive=True)})
case("pow", "pow", lambda a, b: torch.pow(a, b), {"a": rand(2, 3, positive=True), "b": rand(3)})
case("powScalar", "powScalar", lambda a: a ** 3, {"a": a}, {"s": 3})
case("clamp", "clamp", lambda a: a.clamp(-0.4, 0.5), {"a": a}, {"lo": -0.4, "hi": 0.5})

# ---- reductions --------------------------------------------------------------------------------
r3 = rand(3, 4, 5)
case("sum axes", "sum", lambda a: a.sum(dim=(0, 2)), {"a": r3}, {"axes": [0, 2]})
case("mean", "mean", lambda a: a.mean(dim=1), {"a": r3}, {"axes": [1]})
case("amax", "amax", lambda a: a.amax(dim=2), {"a": r3}, {"axes": [2]})

# ---- matmul / linear ---------------------------------------------------------------------------
case("matmul batched broadcast", "matmul", lambda a, b: torch.matmul(a, b), {"a": rand(2, 1, 3, 5), "b": rand(3, 5, 4)})
case("linear", "linear", lambda x, w, b: F.linear(x, w, b), {"x": rand(2, 3, 5), "w": rand(4, 5), "b": rand(4)})

# ---- softmax / norms ---------------------------------------------------------------------------
s = rand(4, 9, scale=4)
case("softmax", "softmax", lambda a: torch.softmax(a, -1), {"a": s})
case("logSoftmax", "logSoftmax", lambda a: torch.log_softmax(a, -1), {"a": s})
ln_x = rand(2, 3, 8, scale=2) + 0.3
case("layerNorm", "layerNorm", lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5), {"x": ln_x, "w": rand(8), "b": rand(8)}, {"eps": 1e-5})
# LlamaRMSNorm: hidden * rsqrt(mean(hidden^2) + eps) * weight
case("rmsNorm", "rmsNorm", lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w, {"x": ln_x, "w": rand(8)}, {"eps": 1e-6})

# ---- embedding / gather ------------------------------------------------------------------------
ids = torch.tensor([[3, 0, 3], [1, 4, 3]], dtype=torch.int32)
case("embedding", "embedding", lambda ids, w: F.embedding(ids.long(), w), {"ids": ids, "w": rand(5, 4)})
gidx = torch.tensor([[0, 2], [2, 1], [1, 1]], dtype=torch.int32)
case("gather", "gather", lambda a, index: torch.gather(a, 1, index.long()), {"a": rand(3, 4), "index": gidx}, {"axis": 1})


# ---- attention ---------------------------------------------------------------------------------
def attention_ref(q, k, v, causal=False, window=0, key_mask=None, scale=None):
    """q [B, Tq, Hq, D], k/v [B, Tk, Hkv, D] -> [B, Tq, Hq, D]; causal aligned to the last query."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    rep = Hq // Hkv
    qh = q.permute(0, 2, 1, 3)
    kh = k.permute(0, 2, 1, 3).repeat_interleave(rep, dim=1)
    vh = v.permute(0, 2, 1, 3).repeat_interleave(rep, dim=1)
    scores = qh @ kh.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(D))
    i = torch.arange(Tq).view(-1, 1) + (Tk - Tq)
    j = torch.arange(Tk).view(1, -1)
    visible = torch.ones(Tq, Tk, dtype=torch.bool)
    if causal:
        visible &= j <= i
    if window > 0:
        visible &= (i - j) < window
    visible = visible.view(1, 1, Tq, Tk)
    if key_mask is not None:
        visible = visible & key_mask.view(B, 1, 1, Tk)
    scores = scores.masked_fill(~visible, float("-inf"))
    return (torch.softmax(scores, -1) @ vh).permute(0, 2, 1, 3)


q, k, v = rand(2, 3, 4, 6), rand(2, 5, 2, 6), rand(2, 5, 2, 6)
case("attention GQA", "attention", lambda q, k, v: attention_ref(q, k, v), {"q": q, "k": k, "v": v})
case("attention causal", "attention", lambda q, k, v: attention_ref(q, k, v, causal=True), {"q": q, "k": k, "v": v}, {"causal": True})
km = torch.tensor([[1, 1, 1, 0, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
case(
    "attention window mask",
    "attention",
    lambda q, k, v, keyMask: attention_ref(q, k, v, causal=True, window=2, key_mask=keyMask),
    {"q": q, "k": k, "v": v, "keyMask": km},
    {"causal": True, "window": 2},
)

# ---- losses ------------------------------------------------------------------------------------
logits = rand(5, 7, scale=3)
tg = torch.tensor([1, 6, -100, 0, 3], dtype=torch.int32)
case("crossEntropy", "crossEntropy", lambda x, t: F.cross_entropy(x, t.long()), {"x": logits, "t": tg})
case(
    "crossEntropy smoothing",
    "crossEntropy",
    lambda x, t: F.cross_entropy(x, t.long(), label_smoothing=0.1, reduction="sum"),
    {"x": logits, "t": tg},
    {"labelSmoothing": 0.1, "reduction": "sum"},
)


# ---- rope (HF apply_rotary_pos_emb on [B, H, T, D]) ------------------------------------------------
def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


T, Dh = 3, 8
inv_freq = 1.0 / (10000 ** (torch.arange(0, Dh, 2, dtype=DT) / Dh))
ang = torch.arange(T, dtype=DT).view(-1, 1) * inv_freq.view(1, -1)  # [T, D/2]
cos_full, sin_full = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()


def rope_ref(x, cos, sin):
    xh = x.permute(0, 2, 1, 3)  # [B, H, T, D]
    out = xh * cos_full + rotate_half(xh) * sin_full
    return out.permute(0, 2, 1, 3)


case("rope", "rope", rope_ref, {"x": rand(2, T, 2, Dh), "cos": ang.cos().view(1, T, Dh // 2), "sin": ang.sin().view(1, T, Dh // 2)})

# ---- patch embedding (ViT) ---------------------------------------------------------------------
case(
    "patchEmbed",
    "patchEmbed",
    lambda x, w, b: F.conv2d(x, w, b, stride=2).flatten(2).transpose(1, 2),
    {"x": rand(2, 3, 4, 6), "w": rand(5, 3, 2, 2), "b": rand(5)},
)

# ---- AdamW: three steps with given gradients -----------------------------------------------------
p0 = rand(6)
grads = [rand(6) for _ in range(3)]
param = torch.nn.Parameter(p0.clone())
opt = torch.optim.AdamW([param], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
for g in grads:
    param.grad = g.clone()
    opt.step()
cases.append(
    {
        "name": "adamw 3 steps",
        "op": "adamw",
        "attrs": {"lr": 0.1, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weightDecay": 0.05},
        "inputs": {"p": enc(p0), **{f"g{i}": enc(g) for i, g in enumerate(grads)}},
        "out": enc(param.detach()),
    }
)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "ops.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump({"generator": f"test/parity/gen_ops.py with torch {torch.__version__}", "cases": cases}, f)
print(f"wrote {len(cases)} cases to {path}")
