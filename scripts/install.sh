#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with softbpr (editable) and its dev tools.
# torch is pinned first so pip takes the CPU build (2.13.0) instead of a multi-GB CUDA build;
# set SOFTBPR_TORCH to another requirement (e.g. "torch==2.14.1") to choose your own.
# Each step says what it does (the torch download alone takes a minute on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "install.sh: $*"; }
if [ -x .venv/bin/python ]; then
  say "using the existing virtual environment .venv"
else
  say "creating a virtual environment in .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
if .venv/bin/python -c "import torch" 2>/dev/null; then
  say "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') is installed"
else
  say "installing ${SOFTBPR_TORCH:-torch==2.13.0} (about 200 MB for the CPU build; takes a while)"
  .venv/bin/pip install -q "${SOFTBPR_TORCH:-torch==2.13.0}"
fi
say "installing softbpr (editable) and its dev tools: pip install -e '.[dev]'"
.venv/bin/pip install -q -e ".[dev]"
say "done: .venv/bin/softbpr train   (or .venv/bin/python -m pytest -q)"
