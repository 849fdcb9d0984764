#!/usr/bin/env bash
# The GPU check (README "Checking a GPU machine"). On a machine with an NVIDIA driver: install the harness from the
# carried wheel folder (only what this Python lacks, into a folder of its own) and measure the GPU path with
# bench/gpu.py. On a machine without one: check the folder is complete for the GPU machine's Python, then run the
# same steps with a stand-in and say "no GPU here". Prints a table and writes $OUT/gpu-check.json (OUT defaults to
# ./gpu-check-out). Exit 2: the folder is missing or incomplete; 1: a check failed.
#   bash scripts/gpu-wheels.sh    # here, once, with the package registry: builds .gpu-wheels/
#   bash scripts/gpu-check.sh     # on the GPU machine (or here)
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${GPU_WHEELS:-.gpu-wheels}
out=${OUT:-$PWD/gpu-check-out}
if ! ls "$wheels"/nsml_harness-*.whl >/dev/null 2>&1; then
  echo "gpu-check: no wheel folder at $wheels: build it first, where the package registry answers, with: bash scripts/gpu-wheels.sh" >&2
  exit 2
fi
if [ -e /dev/nvidiactl ] || [ -e /proc/driver/nvidia ]; then
  PY=${PY:-python3}
  site=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
  "$PY" bench/gpu_wheels.py install "$wheels" "$site"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
else
  PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
  "$PY" bench/gpu_wheels.py verify "$wheels"
fi
"$PY" bench/gpu.py --out "$out"
