#!/usr/bin/python3
"""PyTorch peer for bench/gpt2-step.ts: one training step of a GPT-2-small-shaped stack.

12 pre-LayerNorm GPT-2 blocks (C=768, 12 heads of 64, T=128, B=4) and a final ln_f, applied to a
fixed random input x [4, 128, 768] (no embedding, no LM head); loss = mean(y**2). Everything is
frozen except each block's ln_1.weight (12 vectors of 768). One step = zero grads, forward, loss,
backward, AdamW step (lr 1e-3). Weights: normal(0, 0.02), seeded; biases 0; LayerNorm weight 1.

With MODE=vera, ln_1 stays frozen too and each block's attn.c_attn and attn.c_proj get VeRA as PEFT
computes it (y = base(x) + lambda_b * F.linear(lambda_d * F.linear(x, A[:, :in]), B[:out, :]); shared
frozen A (256 x 768), B (2304 x 256), Kaiming-uniform; lambda_d = 0.1, lambda_b = 0), whose lambda
vectors train. PEFT itself is not installable offline, so its forward is written out here.

With DTYPE=bf16 the step runs as torch's CPU mixed-precision recipe: forward and loss under
torch.autocast('cpu', dtype=torch.bfloat16) (oneDNN bf16 GEMMs), backward outside it; the frozen
Linear weights and biases and VeRA's A and B are stored in bfloat16 (which is faster here than
autocast re-casting float32 weights every step; WEIGHTS=f32 keeps them float32), LayerNorms, the
input and the trained vectors float32.

Usage: /usr/bin/python3 bench/peers/torch_gpt2_step.py THREADS [STEPS=10] [WARMUP=3] [MODE=ln|vera]
       [DTYPE=f32|bf16] [WEIGHTS=bf16|f32]
Prints one JSON line:
  {"torch":..,"blas":..,"threads":n,"median_ms":..,"steps":..,"attention":"sdpa"|"explicit",...}
Run it with Debian's python (python3-torch). The runner sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS
and OPENBLAS_CORETYPE; whatever is unset this script sets itself (see configure()), and it puts
Debian's OpenMP build of OpenBLAS first on LD_LIBRARY_PATH when installed, then re-executes itself
so that the loader and OpenBLAS see the environment.
"""

import json
import math
import os
import re
import statistics
import sys
import time


def cpu_coretype():
    """OpenBLAS core type for this CPU: Debian's OpenBLAS 0.3.21 misdetects recent CPUs (in VMs
    especially) and falls back to a slow generic kernel unless told."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return None
    if "avx512f" in flags:
        return "SkylakeX"
    if "avx2" in flags:
        return "Haswell"
    return None


def openblas_openmp_dir():
    """Debian's OpenMP build of OpenBLAS (libopenblas0-openmp), when installed. torch runs its own
    kernels on OpenMP threads; the default pthread OpenBLAS keeps a second pool of busy-waiting
    threads, and on a small machine the two pools thrash (2 threads: ~5x slower than 1 here)."""
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        p = os.path.join(d, "openblas-openmp")
        if os.path.exists(os.path.join(p, "libblas.so.3")):
            return p
    return None


def configure(threads):
    """Sets the thread and BLAS environment (keeping what the caller set) and re-executes this script
    once so that the dynamic loader and OpenBLAS see it."""
    if os.environ.get("VERA_PEER_CONFIGURED") == "1":
        return
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("MKL_NUM_THREADS", str(threads))
    coretype = cpu_coretype()
    if coretype:
        env.setdefault("OPENBLAS_CORETYPE", coretype)
    omp = openblas_openmp_dir()
    if omp and "openblas" not in env.get("LD_LIBRARY_PATH", ""):
        env["LD_LIBRARY_PATH"] = ":".join(x for x in (omp, env.get("LD_LIBRARY_PATH")) if x)
    elif not omp:
        # pthread OpenBLAS: at least stop torch's OpenMP threads from spinning while OpenBLAS works.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["VERA_PEER_CONFIGURED"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    steps = max(10, int(sys.argv[2])) if len(sys.argv) > 2 else 10
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    mode = sys.argv[4] if len(sys.argv) > 4 else "ln"
    dtype = sys.argv[5] if len(sys.argv) > 5 else "f32"
    weights = sys.argv[6] if len(sys.argv) > 6 else "bf16"
    configure(threads)

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    B, T, C, H, L = 4, 128, 768, 12, 12
    D = C // H
    has_sdpa = hasattr(F, "scaled_dot_product_attention")

    R = 256
    vera_A = torch.empty(R, C)
    vera_B = torch.empty(3 * C, R)
    for t in (vera_A, vera_B):
        bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(t.shape[1])
        t.uniform_(-bound, bound)

    class Vera(nn.Module):
        """PEFT's VeRA Linear forward (peft/tuners/vera/layer.py), on a frozen base nn.Linear."""

        def __init__(self, base):
            super().__init__()
            self.base = base
            self.lambda_d = nn.Parameter(torch.full((R,), 0.1))
            self.lambda_b = nn.Parameter(torch.zeros(base.out_features))

        def forward(self, x):
            a = vera_A[:, : self.base.in_features]
            b = vera_B[: self.base.out_features, :]
            return self.base(x) + self.lambda_b * F.linear(self.lambda_d * F.linear(x, a), b)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)
            if mode == "vera":
                self.c_attn = Vera(self.c_attn)
                self.c_proj = Vera(self.c_proj)

        def forward(self, x):
            q, k, v = self.c_attn(x).split(C, dim=2)
            q = q.view(B, T, H, D).transpose(1, 2)
            k = k.view(B, T, H, D).transpose(1, 2)
            v = v.view(B, T, H, D).transpose(1, 2)
            if has_sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
                att = att.masked_fill(causal_mask, float("-inf"))
                y = torch.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(C, 4 * C)
            self.c_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=1e-5)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(C, eps=1e-5)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    causal_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, x):
            for block in self.h:
                x = block(x)
            return self.ln_f(x)

    model = Stack()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, 0.02)
                mod.bias.zero_()
    for p in model.parameters():
        p.requires_grad_(False)
    if dtype == "bf16" and weights == "bf16":
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, nn.Linear):
                    mod.weight.data = mod.weight.data.to(torch.bfloat16)
                    mod.bias.data = mod.bias.data.to(torch.bfloat16)
            vera_A.data = vera_A.data.to(torch.bfloat16)
            vera_B.data = vera_B.data.to(torch.bfloat16)
    if mode == "vera":
        trainable = [p for n, p in model.named_parameters() if "lambda_" in n]
    else:
        trainable = [block.ln_1.weight for block in model.h]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(1))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            y = model(x)
            loss = (y.float() * y.float()).mean()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        ms.append((time.perf_counter() - t0) * 1e3)

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "torch_package": debian_package("python3-torch"),
                "blas": blas_summary(torch),
                "threads": threads,
                "median_ms": round(statistics.median(ms), 3),
                "min_ms": round(min(ms), 3),
                "samples_ms": [round(v, 1) for v in ms],
                "steps": steps,
                "warmup": warmup,
                "attention": "sdpa" if has_sdpa else "explicit",
                "mode": mode,
                "dtype": dtype,
                "weights": weights if dtype == "bf16" else "f32",
                "loss": loss,
            }
        ),
        flush=True,
    )


def debian_package(name):
    """The Debian package version (Debian's torch 1.13.1 calls itself 1.13.0a0), or None."""
    import subprocess

    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except OSError:
        return None


def blas_summary(torch):
    """Which BLAS actually serves torch's float32 GEMMs. Debian's torch says only BLAS_INFO=generic
    (whatever libblas.so.3 resolves to), so look at the library mapped into this process and ask
    OpenBLAS for its build and the core kernel it chose."""
    m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    info = f"torch BLAS_INFO={m.group(1) if m else '?'}"
    lib = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and re.search(r"/lib(open)?blas[^/]*\.so|/libmkl_", fields[5]):
                    lib = os.path.realpath(fields[5])
                    break
    except OSError:
        pass
    name = f"unknown BLAS ({lib})" if lib else "no BLAS library mapped"
    if lib:
        try:
            import ctypes

            dll = ctypes.CDLL(lib)
            if hasattr(dll, "openblas_get_corename"):
                dll.openblas_get_corename.restype = ctypes.c_char_p
                dll.openblas_get_config.restype = ctypes.c_char_p
                dll.openblas_get_parallel.restype = ctypes.c_int
                version = dll.openblas_get_config().decode().split()[1]
                par = {0: "sequential", 1: "pthread", 2: "openmp"}.get(dll.openblas_get_parallel(), "?")
                name = f"OpenBLAS {version} {par}, core {dll.openblas_get_corename().decode()}"
            elif "/blas/" in lib:
                name = "reference BLAS (netlib, slow: install libopenblas0-openmp)"
            elif "mkl" in lib:
                name = f"MKL ({lib})"
        except (OSError, IndexError):
            pass
    coretype = os.environ.get("OPENBLAS_CORETYPE", "")
    return f"{name} (OPENBLAS_CORETYPE={coretype}); {info}"


if __name__ == "__main__":
    main()
