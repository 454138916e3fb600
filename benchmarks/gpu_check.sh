#!/usr/bin/env bash
# The GPU check: one run on a machine whose Python has a CUDA torch but no network and none of our
# other packages. It installs the wheels carried beside it, then, within 8 minutes, runs the test
# experiment's whole DAG on the GPU in bfloat16, benchmarks/gpu.py's throughput figures and one
# DeepSpeed ZeRO-2 training of the tiny model, and writes one JSON ($OUT/gpu_check.json when OUT
# is set, else results/bench/gpu_check.json). Steps: benchmarks/gpu_check.py.
#
#   make gpu-wheels                    # here, with PyPI: resources/gpu-wheels/ (carry it)
#   bash benchmarks/gpu_check.sh       # there, in the repository root
#   bash benchmarks/gpu_check.sh --cpu # the same steps on the CPU (float32), to try it here
#   (further options, such as --small or --dtype: python benchmarks/gpu_check.py --help)
#
# PYTHON: the interpreter (default python3, the one that holds torch); GPU_WHEELS: the wheel folder
# (default resources/gpu-wheels); GPU_CHECK_DEVICE=cpu: as --cpu; GPU_CHECK_SECONDS: the time box
# (default 480). Exit status: 0 when every step passed, 1 when one failed, 2 when refused.
set -euo pipefail
export GPU_CHECK_START=${GPU_CHECK_START:-$(date +%s)}  # the time box counts from here
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
ARGS=()  # the helper's options, less --cpu (wherever it stands)
for arg in "$@"; do
  if [[ $arg == --cpu ]]; then DEVICE=cpu; else ARGS+=("$arg"); fi
done
WHEELS=${GPU_WHEELS:-resources/gpu-wheels}
SECONDS_LIMIT=${GPU_CHECK_SECONDS:-480}

# Refuse before anything is installed: without a CUDA device every figure would be a CPU's.
if [[ $DEVICE == cuda ]]; then
  "$PY" - <<'CHECK' || exit 2
import sys

try:
    import torch
except ImportError as error:
    sys.exit(f"gpu_check: refused (nothing installed): {sys.executable} has no torch ({error})")
if not torch.cuda.is_available():
    why = "a CPU build of torch" if torch.version.cuda is None else \
        f"torch is built for CUDA {torch.version.cuda}, but no device or driver answers"
    sys.exit(f"gpu_check: refused (nothing installed): torch {torch.__version__} sees no CUDA device ({why}). "
             "Run it on the GPU machine, or pass --cpu to try the CPU path.")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
CHECK
fi

if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
  echo "gpu_check: refused (nothing installed): no wheels in $WHEELS (make gpu-wheels, and carry the folder)" >&2
  exit 2
fi

# The helper keeps every step inside the box itself; this outer limit only catches a hang of the
# helper, and SIGINT lets it write what it has before it goes.
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec timeout --signal=INT --kill-after=30 $((SECONDS_LIMIT + 60)) \
  "$PY" benchmarks/gpu_check.py --device "$DEVICE" --wheels "$WHEELS" --seconds "$SECONDS_LIMIT" "${ARGS[@]}"
