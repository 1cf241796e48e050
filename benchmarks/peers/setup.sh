#!/usr/bin/env bash
# Creates one virtual environment per peer library under benchmarks/.venvs (they pin older
# transformers/numpy than steerkit). torch is pinned to the local CPU wheel on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
for peer in steering-vectors repeng; do
  venv=".venvs/$peer"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$TORCH_SPEC"
  "$venv/bin/pip" install -q "$peer" gguf accelerate
done
# sae-lens (interop check benchmarks/sae_lens_roundtrip.py) in its own venv: it pulls many dependencies
[ -x .venvs/sae-lens/bin/python ] || python3 -m venv .venvs/sae-lens
.venvs/sae-lens/bin/pip install -q "$TORCH_SPEC"
.venvs/sae-lens/bin/pip install -q sae-lens scikit-learn pandas tqdm  # + what steerkit imports (PYTHONPATH=.)
