#!/usr/bin/env bash
# The wheels that benchmarks/gpu_check.sh installs on a GPU machine with no network: every
# distribution of envs/gpu-wheels.txt, one version each, for CPython $PYTHON_VERSION on manylinux
# x86_64, into DIR (default resources/gpu-wheels/, which git ignores).
#
#   scripts/gpu_wheels.sh [DIR]          (make gpu-wheels)
#   PYTHON_VERSION=3.11 scripts/gpu_wheels.sh /tmp/wheels-311   # for a local emulation
#
# A distribution that PyPI has only as an sdist (deepspeed, connection_pool) is built here into a
# pure-Python wheel (DeepSpeed with DS_BUILD_OPS=0: it compiles its ops at run time if asked).
# Wheels already in DIR are kept; any wheel not in the list (another version, another Python) is
# removed. Fails when DIR is larger than the device machine's 64 MiB, less what else travels
# with it (the tracked and untracked, not ignored files of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

LIST=envs/gpu-wheels.txt
DIR=${1:-resources/gpu-wheels}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
LIMIT_BYTES=$((64 * 1024 * 1024))

# pip matches a manylinux tag exactly: name every glibc up to the image's (Ubuntu 24.04: 2.39).
PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for minor in $(seq 5 39); do PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64"); done

mkdir -p "$DIR"
mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')

# What the folder holds and is missing, by the wheel's name and version (never by guessing from a
# file name with a regex: packaging parses it as pip does).
wheel_state() {  # wheel_state missing|prune
  "$PY" - "$1" "$DIR" "$PYTHON_VERSION" "${PINS[@]}" <<'PY'
import sys
from pathlib import Path
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

mode, folder, python, pins = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
wanted = {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in pins}
version = tuple(int(x) for x in python.split("."))
platforms = ["manylinux2014_x86_64", "manylinux1_x86_64", *(f"manylinux_2_{m}_x86_64" for m in range(5, 40)),
             "linux_x86_64"]
fits = {*cpython_tags(version, platforms=platforms), *compatible_tags(version, platforms=platforms)}
present = set()
for wheel in sorted(folder.glob("*.whl")):
    name, ver, _, tags = parse_wheel_filename(wheel.name)
    if wanted.get(name) == str(ver) and tags & fits and name not in present:
        present.add(name)
    elif mode == "prune":
        print(f"removing {wheel.name} (not in the list, or not for CPython {python})", file=sys.stderr)
        wheel.unlink()
for name, ver in wanted.items():
    if name not in present:
        print(f"{name}=={ver}")
PY
}

mapfile -t MISSING < <(wheel_state prune)
for pin in "${MISSING[@]}"; do
  echo "fetching $pin" >&2
  if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
        --implementation cp "${PLATFORMS[@]}" --dest "$DIR" "$pin" 2>/dev/null; then
    # No wheel for that Python: build one from the sdist; it must come out pure Python, since a
    # compiled build here would be for this machine's Python, not the target's.
    echo "  no wheel on the index: building $pin from its sdist" >&2
    build=$(mktemp -d)
    DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-binary="${pin%%==*}" --wheel-dir "$build" "$pin" >&2
    for wheel in "$build"/*.whl; do
      if [[ $wheel != *-none-any.whl ]]; then
        echo "$pin built a platform wheel ($(basename "$wheel")): refusing it" >&2
        exit 1
      fi
      mv "$wheel" "$DIR"/
    done
    rm -rf "$build"
  fi
done

mapfile -t STILL < <(wheel_state missing)
if ((${#STILL[@]})); then
  echo "missing after the download: ${STILL[*]}" >&2
  exit 1
fi

# The device machine takes 64 MiB in all: the wheels plus the checkout's travelling files.
wheels=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
budget=$((LIMIT_BYTES - tree))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "$DIR: ${#PINS[@]} wheels for CPython $PYTHON_VERSION, $(mib "$wheels")" \
  "(budget $(mib "$budget"): 64 MiB less the checkout's $(mib "$tree"))"
if ((wheels > budget)); then
  echo "too large to carry: $(mib "$wheels") > $(mib "$budget")" >&2
  exit 1
fi
