#!/usr/bin/env bash
# A venv made like the lent GPU machine's Python (python3 3.12, torch 2.11.0 with CUDA 13, the
# image's transformers, huggingface-hub, accelerate and scientific stack, none of our other
# packages), to try benchmarks/gpu_check.sh's CPU path here before a GPU is lent:
#
#   scripts/gpu_image_venv.sh /tmp/gpu-image          # needs a python3.12 and PyPI (about 4 GB)
#   make gpu-wheels
#   PYTHON=/tmp/gpu-image/bin/python3 GPU_CHECK_SECONDS=2400 \
#     bash benchmarks/gpu_check.sh --cpu --dtype bfloat16 --small
#
# The versions are those the device tool's notes list for the image (2026-11); the venv keeps only
# `python3` in its bin folder, as an image may, so the check's own `python` for the jobs is tried.
set -euo pipefail
DIR=${1:-/tmp/gpu-image}
PY312=${PY312:-python3.12}

"$PY312" -m venv "$DIR"
"$DIR/bin/python3" -m pip install --quiet --disable-pip-version-check \
  torch==2.11.0 transformers==5.17.0 huggingface_hub==1.33.0 accelerate==1.15.0 numpy==2.5.2 \
  safetensors==0.8.0 tokenizers==0.23.2 peft pandas pyarrow scipy scikit-learn matplotlib jinja2 \
  pyyaml tqdm requests aiohttp xxhash sacrebleu regex click filelock hf-xet psutil \
  einops msgpack ninja py-cpuinfo absl-py six wrapt
rm -f "$DIR/bin/python"
"$DIR/bin/python3" -c "import sys, torch, transformers; print(f'{sys.argv[1]}: Python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}')" "$DIR"
