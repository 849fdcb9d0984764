"""What the simulator's synthetic teams run: each task's baseline folders, the arguments drawn for them, and
each team's behaviour.

A task's baselines come from, in order: `--baseline TASK=FOLDER` on the command line; the task's own
`[simulate]` table in task.toml (its grammar: harness.taskpacks.simulate_table); the catalogue of the built-in
tasks below.
"""
from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path

from harness import resources
from harness.core.errors import UserError
from harness.taskpacks.simulate_table import ENTRY, Baseline, _checked, draw_args, from_manifest  # noqa: F401

SUBMISSIONS = resources.SUBMISSIONS


class Behaviour(str, Enum):
    """How a synthetic team plays (drawn per team with the weights of BEHAVIOUR_WEIGHTS)."""
    STEADY = "steady"            # a baseline by weight, fresh arguments each session
    IMPROVING = "improving"      # works up the baseline list, from the last (weakest) to the first (strongest)
    OVERFITTING = "overfitting"  # submits all it may and picks its finals by the best public scores
    CRASHING = "crashing"        # its code often crashes, in training or in infer, or returns too little
    TIMING_OUT = "timing-out"    # its infer often hangs past the submit limit


BEHAVIOUR_WEIGHTS = {Behaviour.STEADY: 0.35, Behaviour.IMPROVING: 0.25, Behaviour.OVERFITTING: 0.2,
                     Behaviour.CRASHING: 0.1, Behaviour.TIMING_OUT: 0.1}
FAULTS = ("train_crash", "infer_crash", "infer_timeout", "infer_invalid")
FAULTS_OF = {Behaviour.CRASHING: ("train_crash", "infer_crash", "infer_invalid"),
             Behaviour.TIMING_OUT: ("infer_timeout",)}
FAULT_RATE = {Behaviour.CRASHING: 0.6, Behaviour.TIMING_OUT: 0.6}  # the others: BASE_FAULT_RATE, any fault
BASE_FAULT_RATE = 0.03


# built-in tasks: [(baseline folder under the shipped submissions, argument template, weight)], strongest first
CATALOG = {
    "garbage-docs": [("garbage_docs_ngram", "--ngram_min {int:1:3} --ngram_max {int:3:6} --C {float:0.03:30} "
                      "--train_fraction {float:0.2:1.0} --hash_bits {int:14:19} --seed {seed}", 0.9),
                     ("garbage_docs_majority", "", 0.1)],
    "bus-eta": [("bus_eta_gbm", "--max_iter {int:10:150} --lr {float:0.02:0.3} --seed {seed}", 0.8),
                ("bus_eta_segment_mean", "", 0.2)],
    "playlist": [("playlist_item_knn", "", 0.7), ("playlist_popularity", "", 0.3)],
    "face-age": [("face_age_cnn", "", 1.0)],
    "landmark": [("landmark_cnn", "", 1.0)],
}

def parse_cli(values: tuple[str, ...] | list[str]) -> dict[str, list[Baseline]]:
    """`--baseline TASK=FOLDER`, repeated: TASK → its baselines, in the order given (the strongest first)."""
    out: dict[str, list[Baseline]] = {}
    for value in values:
        task, sep, folder = value.partition("=")
        if not sep or not task or not folder:
            raise UserError(f"--baseline: expected TASK=FOLDER, got {value!r}")
        out.setdefault(task, []).append(Baseline(_checked(Path(folder), f"--baseline {value}")))
    return out


def for_task(task: str, cli: dict[str, list[Baseline]], extra: dict, task_folder: Path, where: str) -> list[Baseline]:
    """TASK's baselines: the command line's, else the task's [simulate], else the built-in catalogue."""
    found = cli.get(task) or from_manifest(extra, task_folder, where)
    if not found and task in CATALOG:
        found = [Baseline(SUBMISSIONS / name, args, weight) for name, args, weight in CATALOG[task]]
    if not found:
        raise UserError(f"{where}: task {task!r} has no baselines to simulate: give --baseline {task}=FOLDER, or "
                        f"list folders in its task.toml ([simulate] baselines = [\"baselines/mine\"])")
    return found


FAULT_WRAPPER = '''"""A simulated participant fault ({fault}) around a baseline's main.py (written by contest simulate)."""
import runpy
import sys
import time

import nsml

FAULT = "{fault}"
testing = "--mode" in sys.argv and sys.argv[sys.argv.index("--mode") + 1] == "test"
if FAULT == "train_crash" and not testing:
    raise RuntimeError("simulated bug in the training code")
if testing and FAULT == "infer_crash":
    raise RuntimeError("simulated bug in infer")
if testing and FAULT == "infer_timeout":
    time.sleep(10 ** 6)
if testing and FAULT == "infer_invalid":
    real_bind = nsml.bind

    def bind(save=None, load=None, infer=None, **kwargs):
        def short(*args, **kw):
            return list(infer(*args, **kw))[:1]  # one prediction for the whole test set
        return real_bind(save=save, load=load, infer=short, **kwargs)
    nsml.bind = bind
runpy.run_path("participant_main.py", run_name="__main__")
'''


def code_folder(baseline: Baseline, dest: Path, fault: str | None) -> Path:
    """A copy of BASELINE's folder at DEST, with FAULT planted around its main.py when given."""
    shutil.copytree(baseline.folder, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".git", "*.pyc"))
    if fault:
        (dest / ENTRY).rename(dest / "participant_main.py")
        (dest / ENTRY).write_text(FAULT_WRAPPER.format(fault=fault))
    return dest
