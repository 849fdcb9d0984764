#!/usr/bin/env bash
# A demo contest round on the embedded default (process runtime + SQLite), in ./demo-state:
# prepare garbage-docs, train the LSTM baseline (alice) and the majority baseline (bob), submit each one's best
# checkpoint, print the leaderboard. Then a two-round contest on simulated time with synthetic teams
# (contests/demo.toml), whose report lands in demo-state/contest-sim/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HARNESS_HOME="$PWD/demo-state"
rm -rf "$HARNESS_HOME"
mkdir -p "$HARNESS_HOME"

best_checkpoint() {  # the checkpoint with the best validation accuracy
  nsml model ls "$1" -j | python -c 'import json,sys; c=json.load(sys.stdin); print(max(c, key=lambda r: r["summary"].get("valid/balanced_acc", 0))["checkpoint"])'
}

set -x
harness dataset prepare garbage-docs
# (each run's line is echoed from a variable: a tee to the stderr device would reopen, and truncate, a redirected log)
started=$(nsml --user alice run -d garbage-docs -e main.py -a "--epochs 2 --max_words 100" submissions/garbage_docs_lstm)
echo "$started"
lstm=$(echo "$started" | awk '{print $2}')
started=$(nsml --user bob run -d garbage-docs -e main.py submissions/garbage_docs_majority)
echo "$started"
majority=$(echo "$started" | awk '{print $2}')
nsml --user alice ps
nsml --user alice logs -f "$lstm"
nsml --user bob logs -f "$majority"
nsml --user alice model ls "$lstm"
nsml --user alice submit -t "$lstm" "$(best_checkpoint "$lstm")"
nsml --user alice submit "$lstm" "$(best_checkpoint "$lstm")"
nsml --user bob submit "$majority" "$(best_checkpoint "$majority")"
nsml dataset board garbage-docs
nsml contest simulate contests/demo.toml --teams 5 --seed 7 --scale 0.3 --out demo-state/contest-sim
nsml --root demo-state/contest-sim/state contest board garbage-docs
