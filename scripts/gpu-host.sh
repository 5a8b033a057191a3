#!/bin/bash
# Runs CUDA work on a GPU host that has nvcc and PyTorch but no Node.js or npm registry (this project's
# lent H100/H200 machines): unpacks a carried Node binary, its headers and the production
# node_modules from .gpu/ (made on the development machine:
#   xz -T2 -c $(command -v node) > .gpu/node.xz; tar cJf .gpu/node-include.tar.xz -C /usr/include node
#   tar cJf .gpu/nm.tar.xz node_modules   # after npm ci --omit=dev in a scratch copy
# ), builds build/Release/vera_cuda.node there with that machine's nvcc and cuBLASLt, then runs each
# argument as a step:
#   test           the GPU test suite (npm run test:cuda): conformance and fixtures on cuda
#   tests:FILTER   node scripts/run-tests.mjs FILTER with VERA_BACKEND=cuda (existing CPU tests on the GPU)
#   bench:NAMES    node dist/bench/run.js NAMES --no-write (JSON lines)
#   peft:CASES     python3 bench/peers/peft_cuda.py CASES (comma-separated; PEFT from .gpu/peft-*.whl)
#   sh:COMMAND     any shell command
# Logs go to $OUT (the device tool's output folder) when it is set, else to ./gpu-out.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ! command -v node >/dev/null; then
  xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
  export PATH=/tmp:$PATH
fi
if [ ! -f /tmp/inc/node/node_api.h ]; then mkdir -p /tmp/inc && tar xJf .gpu/node-include.tar.xz -C /tmp/inc; fi
[ -d node_modules ] || tar xJf .gpu/nm.tar.xz
export VERA_NODE_INCLUDE=/tmp/inc/node
# NVIDIA's header-only cudnn-frontend for cuDNN's fused attention (the host has cuDNN, not the frontend):
#   made with `tar cJf .gpu/cudnn-frontend.tar.xz -C DIR cudnn-frontend` (DIR/cudnn-frontend/include).
if [ -f .gpu/cudnn-frontend.tar.xz ]; then
  [ -d /tmp/cudnn-frontend ] || tar xJf .gpu/cudnn-frontend.tar.xz -C /tmp
  export VERA_CUDNN_FRONTEND=/tmp/cudnn-frontend/include VERA_REQUIRE_CUDNN=1
fi
if ls .gpu/peft-*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/peft ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/peft-*.whl
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
# The benches' PyTorch peers run with the python3 that has torch (not necessarily /usr/bin/python3).
export VERA_PEER_PYTHON=${VERA_PEER_PYTHON:-$(command -v python3)}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
node --version
node scripts/build-cuda.mjs 2>&1 | tee "$OUT/build.log" || exit 1
[ -f build/Release/vera_cuda.node ] || { echo "no addon built"; exit 1; }
status=0
for step in "$@"; do
  case "$step" in
    test)
      echo "== npm run test:cuda"
      VERA_REQUIRE_CUDA=1 node scripts/run-tests.mjs cuda > "$OUT/test-cuda.log" 2>&1 || status=1
      grep -E '^# (tests|pass|fail|skipped)|^not ok' "$OUT/test-cuda.log" | head -40
      ;;
    tests:*)
      f=${step#tests:}
      echo "== VERA_BACKEND=cuda tests $f"
      VERA_BACKEND=cuda node scripts/run-tests.mjs $f > "$OUT/tests-${f//\//_}.log" 2>&1 || status=1
      grep -E '^# (tests|pass|fail|skipped)|^not ok' "$OUT/tests-${f//\//_}.log" | head -20
      ;;
    bench:*)
      echo "== bench ${step#bench:}"
      node dist/bench/run.js ${step#bench:} --no-write 2>"$OUT/bench.err" | tee -a "$OUT/bench.jsonl" || status=1
      tail -30 "$OUT/bench.err"
      ;;
    peft:*)
      echo "== peft ${step#peft:}"
      python3 bench/peers/peft_cuda.py $(echo "${step#peft:}" | tr , " ") 2>"$OUT/peft.err" | tee -a "$OUT/peft.jsonl" || status=1
      tail -3 "$OUT/peft.err"
      ;;
    sh:*)
      echo "== ${step#sh:}"
      bash -c "${step#sh:}" || status=1
      ;;
  esac
done
exit $status
