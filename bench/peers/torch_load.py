#!/usr/bin/python3
"""PyTorch peer for bench/load.ts: the least a PyTorch program does to load a safetensors checkpoint
without transformers or the safetensors package (neither is installed here): parse the header, read each
tensor with one readinto into torch memory, convert it to the wanted dtype (bench/peers/torch_generate.py's
read_safetensors), and keep the state dict. "PyTorch 1.13 raw safetensors read", not from_pretrained.

Usage: /usr/bin/python3 bench/peers/torch_load.py THREADS MODEL_DIR DTYPE
  DTYPE f32 (bf16 weights widened to float32) or bf16 (kept as stored).
Prints one JSON line: {"torch", "seconds", "peak_mib", "params_mib", "detail"}; peak_mib is the process's
peak RSS minus its RSS just before the load (torch imported, its allocator warmed up by a small load).
"""

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_generate import read_safetensors  # noqa: E402
from torch_gpt2_step import configure  # noqa: E402


def status_bytes(field):
    """A size from /proc/self/status: VmRSS (now) or VmHWM (the peak of this address space; getrusage's
    ru_maxrss also counts the parent's memory from before the exec of this process)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    threads = int(sys.argv[1])
    model_dir, dtype_name = sys.argv[2], sys.argv[3]
    configure(threads)

    import torch

    torch.set_num_threads(threads)
    dtype = torch.float32 if dtype_name == "f32" else torch.bfloat16
    # Warm-up: a small tensor through the same path (first-use costs of torch's ops and allocator).
    torch.ones(1 << 16, dtype=torch.bfloat16).to(dtype).sum()
    base = status_bytes("VmRSS")
    t0 = time.perf_counter()
    state = read_safetensors(os.path.join(model_dir, "model.safetensors"), dtype)
    seconds = time.perf_counter() - t0
    peak = status_bytes("VmHWM")
    params = sum(t.numel() * t.element_size() for t in state.values())
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "dtype": dtype_name,
                "seconds": seconds,
                "peak_mib": (peak - base) / 2**20,
                "params_mib": params / 2**20,
                "tensors": len(state),
                "detail": "header parser + readinto per tensor, then .to(dtype); a state dict, no nn.Module",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
