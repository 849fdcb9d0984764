"""Other users under attack: how long another user's one-line session (`run` + `logs -f`) takes while one
participant's session fork-bombs or floods its events file, divided by the same session on the same machine
with nothing else running (samples alternate). Goal: ≤ 1.5× for each attack.

    python bench/hostile.py [--repeat 3]       → bench/results/hostile.json and .md

Attacks: `fork_bomb` forks until the kernel refuses (limits.pids per run) and holds its processes;
`event_flood` appends 300,000 report events at once (2,000 are read a pass, 100,000 values kept a session).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402
from common import ENTRY, REPO, cli, prepare_without_quota, timed  # noqa: E402

ATTACKS = {
    "fork_bomb": '''
import os, time
n = 0
while n < 20000:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    n += 1
print("holding", n, flush=True)
time.sleep(120)
''',
    "event_flood": '''
import json, os, time
line = json.dumps({"type": "report", "step": 1, "metrics": {"loss": 0.5}}) + "\\n"
with open(os.environ["NSML_EVENTS"], "a") as fh:
    fh.write(line * 300000)
print("flooded", flush=True)
time.sleep(120)
''',
}


def victim(root: Path, code: Path) -> float:
    def once():
        name = cli(root, "run", "-d", "garbage-docs", "-a", "--work 0", str(code), user="carol").split()[1]
        cli(root, "logs", "-f", name, user="carol")
    return timed(once)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        root.mkdir()
        prepare_without_quota(root)
        code = fixtures.entry_folder(tmp / "victim", ENTRY)
        keeper = fixtures.entry_folder(tmp / "keeper", "import time\ntime.sleep(3600)\n")
        keep = cli(root, "run", "-d", "garbage-docs", str(keeper), user="idle").split()[1]  # the scheduler stays up
        victim(root, code)  # warm: the scheduler, imports, caches
        for attack, source in ATTACKS.items():
            folder = fixtures.entry_folder(tmp / attack, source)
            bare, attacked = [], []
            for _ in range(args.repeat):
                bare.append(victim(root, code))
                name = cli(root, "run", "-d", "garbage-docs", str(folder), user="mallory").split()[1]
                time.sleep(3)  # the attack is in place
                attacked.append(victim(root, code))
                said = cli(root, "logs", name, user="mallory").strip().splitlines()
                cli(root, "stop", name, user="mallory")
                time.sleep(2)  # its processes are gone before the next bare sample
            print(f"{attack}: the attacker said {said[-1] if said else '(nothing)'!r}", flush=True)
            b, a = statistics.median(bare), statistics.median(attacked)
            rows[attack] = {"bare_s": round(b, 3), "attacked_s": round(a, 3), "ratio": round(a / b, 2),
                            "goal": 1.5, "met": a / b <= 1.5}
            print(f"{attack}: bare {b:.2f} s, attacked {a:.2f} s, ratio {a / b:.2f}", flush=True)
        cli(root, "stop", keep, user="idle")
    out = {"machine": platform.platform(), "repeat": args.repeat, "rows": rows,
           "command": "python bench/hostile.py --repeat %d" % args.repeat}
    results = REPO / "bench" / "results"
    (results / "hostile.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["| attack | another user's session, bare | while attacked | ratio | goal |", "|---|---|---|---|---|"]
    for attack, r in rows.items():
        lines.append(f"| {attack} | {r['bare_s']} s | {r['attacked_s']} s | {r['ratio']}× | ≤ 1.5× "
                     f"{'met' if r['met'] else 'missed'} |")
    (results / "hostile.md").write_text(f"`{out['command']}` on {out['machine']}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
