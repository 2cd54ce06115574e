#!/usr/bin/env bash
# On a machine with one GPU: the speed figures on Gowalla and the default dataset (bench/epoch.py
# on CUDA, alone on the GPU), then the GPU tests. Meant to finish in under 8 minutes.
#   bash bench/gpu_check.sh            (after scripts/install.sh with a CUDA build of torch)
# Env: PY (python), OUT (folder for bench-gpu.json), TESTS=0 (skip the tests),
#      CPU_BENCH=1 (also the CPU figures of the default dataset on this host).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUTDIR=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 240 "$PY" bench/epoch.py --datasets synthetic,gowalla --device cuda --max-batches 200 \
    --json "$OUTDIR/bench-gpu.json"
if [ "${TESTS:-1}" != 0 ]; then
    timeout 180 "$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
fi
if [ "${CPU_BENCH:-0}" != 0 ]; then
    timeout 120 "$PY" bench/epoch.py --datasets synthetic --device cpu --max-batches 50
fi
