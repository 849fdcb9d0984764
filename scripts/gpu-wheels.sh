#!/usr/bin/env bash
# Build the wheel folder the GPU check carries (.gpu-wheels/, ignored by git): the harness's wheel and every wheel
# its requirements need on a GPU machine of this workplace (CPython 3.12, x86-64, no package registry there), at
# this environment's versions, less the heavy packages that machine has (bench/gpu_wheels.py PROVIDED). Needs the
# package registry; about 30 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" bench/gpu_wheels.py build "${GPU_WHEELS:-.gpu-wheels}"
