# Cross-check of the shipped base model in Hugging Face's own stack (transformers + tokenizers): loads
# assets/base-model, prints token ids, held-out loss (same 129-token windows as our evaluate()) and a
# greedy continuation as JSON, for comparison with `node dist/src/pretrain/cli.js eval|sample`.
# Usage: python3 scripts/base-model/check_transformers.py [MODEL_DIR] [HELDOUT_TXT]
import json
import math
import sys

import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir = sys.argv[1] if len(sys.argv) > 1 else "assets/base-model"
heldout = sys.argv[2] if len(sys.argv) > 2 else "test/pretrain/fixtures/heldout.txt"
EOT = "<|endoftext|>"

tok = AutoTokenizer.from_pretrained(model_dir)
raw = tokenizers.Tokenizer.from_file(f"{model_dir}/tokenizer.json")
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

docs = [d.strip() for d in open(heldout, encoding="utf-8").read().split(f"\n{EOT}\n") if d.strip()]
ids = []
for d in docs:
    a = tok(d)["input_ids"]
    assert a == raw.encode(d).ids, "AutoTokenizer and tokenizers.Tokenizer disagree"
    ids += a + [tok.eos_token_id]

total, n = 0.0, 0
with torch.no_grad():
    for s in range(0, len(ids) - 128, 128):
        w = torch.tensor([ids[s : s + 129]])
        logits = model(w[:, :-1]).logits
        total += torch.nn.functional.cross_entropy(logits[0], w[0, 1:], reduction="sum").item()
        n += 128

prompt = tok("In the beginning", return_tensors="pt")
with torch.no_grad():
    out = model.generate(**prompt, max_new_tokens=40, do_sample=False, pad_token_id=tok.eos_token_id)
print(
    json.dumps(
        {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "tokenizer_class": type(tok).__name__,
            "model_class": type(model).__name__,
            "probe_ids": tok("It's 2024 — naïve café!")["input_ids"],
            "heldout_tokens": len(ids),
            "heldout_first_ids": ids[:16],
            "heldout_loss": total / n,
            "heldout_ppl": math.exp(total / n),
            "greedy": tok.decode(out[0]),
            "greedy_ids": out[0].tolist()[prompt["input_ids"].shape[1] :],
        },
        indent=1,
    )
)
