#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with softbpr (editable) and its dev tools.
# torch is pinned first so pip takes the CPU build (2.13.0) instead of a multi-GB CUDA build;
# set SOFTBPR_TORCH to another requirement (e.g. "torch==2.14.1") to choose your own.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "${SOFTBPR_TORCH:-torch==2.13.0}"
fi
.venv/bin/pip install -q -e ".[dev]"
