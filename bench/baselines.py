"""Held-out scores and CPU training times of every built-in task's baselines, through the real CLI.

Prepares each task (default scale, seed 0), trains each baseline with its default arguments, submits the
checkpoint with the best validation score, and scores the trivial answer (majority / mean / most frequent class)
with the same evaluator for comparison. Prints a Markdown table.

    python bench/baselines.py [--scale 1.0] [--only TASK] [--out bench/results/baselines.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, cli  # noqa: E402

# task → [(baseline folder, summary key to pick the checkpoint by, higher is better for that key)]
BASELINES = {
    "garbage-docs": [("garbage_docs_majority", "valid/balanced_acc", True),
                     ("garbage_docs_lstm", "valid/balanced_acc", True),
                     ("garbage_docs_electra", "valid/balanced_acc", True),
                     ("garbage_docs_electra_cnn", "valid/balanced_acc", True)],  # loads the ELECTRA session
    "bus-eta": [("bus_eta_segment_mean", "valid/rmse", False), ("bus_eta_gbm", "valid/rmse", False)],
    "landmark": [("landmark_cnn", "valid/acc", True)],
    "face-age": [("face_age_cnn", "valid/acc", True)],
    "playlist": [("playlist_popularity", "songs_seen", True), ("playlist_item_knn", "playlists", True),
                 ("playlist_autoencoder", "epoch", True)],
}


def trivial_score(task: str, dataset: Path, tmp: Path) -> float | None:
    if task in ("garbage-docs", "playlist"):
        return None  # their majority / popularity baselines are the trivial answer, run through the harness
    sys.path.insert(0, str(REPO / "tests"))
    from test_round1_tasks import trivial_prediction  # the same trivial answers the tests compare against

    from harness.scoring.evaluator import evaluate
    pred = trivial_prediction(task, dataset, tmp / f"trivial-{task}.csv")
    return evaluate(dataset / "evaluation.py", pred, dataset / "test" / "test_label", 120).score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default=None, help="one task")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "baselines.json")
    args = parser.parse_args()
    rows = []
    picked = {}  # baseline → (session, best checkpoint), for the sessions that load another's checkpoint
    with tempfile.TemporaryDirectory(prefix="harness-baselines-") as tmp:
        root = Path(tmp)
        for task, baselines in BASELINES.items():
            if args.only and task != args.only:
                continue
            cli(root, "dataset", "prepare", task, "--scale", str(args.scale))
            trivial = trivial_score(task, root / ".harness" / "datasets" / task, root)
            if trivial is not None:
                rows.append({"task": task, "baseline": "trivial (mean / majority / most frequent)",
                             "checkpoint": "", "valid": None, "test_score": trivial, "train_seconds": 0.0})
            for baseline, key, higher in baselines:
                user = baseline.replace("_", "-")  # one user per baseline: one counted submit each
                start = time.perf_counter()
                extra = []
                if baseline == "garbage_docs_electra_cnn":
                    session, ckpt = picked["garbage_docs_electra"]
                    extra = ["-a", f"--load_session {session} --load_checkpoint {ckpt}"]
                name = cli(root, "run", "-d", task, "-e", "main.py", *extra, str(REPO / "submissions" / baseline),
                           user=user).split()[1]
                cli(root, "logs", "-f", name, user=user)
                train_s = time.perf_counter() - start
                ckpts = json.loads(cli(root, "model", "ls", name, "-j", user=user))
                sign = 1 if higher else -1
                best = max(ckpts, key=lambda c: (sign * c["summary"].get(key, -sign * 1e18), c["checkpoint"]))
                picked[baseline] = (name, best["checkpoint"])
                result = json.loads(cli(root, "submit", name, best["checkpoint"], "-j", user=user))
                rows.append({"task": task, "baseline": baseline, "checkpoint": best["checkpoint"],
                             "valid": best["summary"].get(key), "valid_key": key, "test_score": result["score"],
                             "train_seconds": round(train_s, 1)})
    out = {"command": f"python bench/baselines.py --scale {args.scale}",
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("| task (metric) | baseline | held-out score | validation | CPU training time |")
    print("|---|---|---|---|---|")
    metric = {"garbage-docs": "accuracy ↑", "bus-eta": "RMSE s ↓", "landmark": "GAP ↑", "face-age": "accuracy ↑",
              "playlist": "nDCG@100 ↑"}
    for r in rows:
        valid = f"{r['valid_key']} {r['valid']:.4f} (ckpt {r['checkpoint']})" if r["valid"] is not None else ""
        print(f"| {r['task']} ({metric[r['task']]}) | {r['baseline']} | {r['test_score']:.4f} | {valid} "
              f"| {r['train_seconds']:.0f} s |")

if __name__ == "__main__":
    main()
