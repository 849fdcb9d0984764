#!/usr/bin/env bash
# The wheel works alone: build it, install it into a fresh venv outside the checkout, and there prepare
# garbage-docs, train and submit a session, and simulate a 2-team contest. Nothing of the checkout is on the
# path: built-in tasks, baselines and the Dockerfile come from the wheel's package data.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
work=$(mktemp -d /tmp/wheel-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
PY=${PY:-.venv/bin/python}

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/nsml_harness-*.whl
"$work/venv/bin/pip" install -q --no-deps konlpy==0.6.0  # garbage-docs' Korean corpus, as the README says
cd "$work"  # outside the checkout: the harness below is the wheel's
nsml="$work/venv/bin/nsml"
"$work/venv/bin/python" -c 'import harness, sys; assert "/venv/" in harness.__file__, harness.__file__; print("harness from", harness.__file__)'
export HARNESS_HOME="$work/state" HARNESS_USER=wheel
mkdir -p "$HARNESS_HOME" code
HARNESS_USER=$(id -un) "$nsml" dataset prepare garbage-docs --scale 0.1
python3 -c "import sys; sys.path.insert(0, '$checkout/bench'); from common import ENTRY; print(ENTRY)" \
  > code/main.py  # the benchmarks' NSML entry: saves checkpoint 0, infers zeros
name=$("$nsml" run -d garbage-docs -a "--work 0" code | awk '{print $2}')
"$nsml" logs -f "$name"
"$nsml" submit "$name" 0 | tee "$work/submit.txt"
grep -q '^Score:' "$work/submit.txt"
"$nsml" board garbage-docs -j | "$work/venv/bin/python" -c 'import json, sys; b = json.load(sys.stdin); assert len(b) == 1 and b[0]["user"] == "wheel", b'
HARNESS_USER=$(id -un) "$nsml" contest simulate "$checkout/contests/demo.toml" --teams 2 --seed 1 --scale 0.1 \
  --out "$work/sim" | tail -3
test -s "$work/sim/report.md" && test -s "$work/sim/report.html"
echo "wheel check: ok"
