#!/usr/bin/env bash
# Scoring and training throughput in bfloat16 on one GPU -> results/bench/gpu.json.
#
#   benchmarks/gpu.sh [options of benchmarks/gpu.py]
#
# Needs a Python with a CUDA build of torch and the project's requirements: $PYTHON, else the
# project's .venv, else python3. SmolLM2-135M uses the converted checkpoint under
# results/bench/work/ where `python -m benchmarks.data` made one, random weights of its shape
# otherwise; the ~1.2B Llama-shaped model always has random weights (nothing is downloaded).
# The run is cut at 8 minutes (about 2 on an H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
"$PY" - <<'CHECK'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"benchmarks/gpu.sh: no CUDA device for torch {torch.__version__} (a CPU build, or no driver)")
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
CHECK
mkdir -p results/bench
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
timeout --signal=INT --kill-after=20 480 "$PY" -m benchmarks.gpu "$@"
