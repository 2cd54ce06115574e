#!/usr/bin/env bash
# On a machine with one GPU: the GPU tests, then the speed figures on Gowalla and the default
# dataset, CPU and GPU in the same run. Meant to finish in under 8 minutes.
#   bash bench/gpu_check.sh            (after scripts/install.sh with a CUDA build of torch)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 180 "$PY" -m pytest -q -m gpu tests/test_gpu.py
timeout 240 "$PY" bench/epoch.py --datasets synthetic,gowalla --device cuda --max-batches 200 \
    --json "${OUT:-.}/bench-gpu.json"
timeout 120 "$PY" bench/epoch.py --datasets synthetic --device cpu --max-batches 50
