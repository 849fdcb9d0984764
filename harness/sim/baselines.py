"""What the simulator's synthetic teams run: each task's baseline folders, the arguments drawn for them, and
each team's behaviour.

A task's baselines come from, in order: `--baseline TASK=FOLDER` on the command line; the task's own
`[simulate]` table in task.toml (`baselines = ["baselines/knn", {folder = "baselines/cnn", args = "--lr
{float:0.001:0.1} --seed {seed}", weight = 2}]`, folders relative to the task's folder, the strongest first);
the catalogue of the built-in tasks below.  Arguments are templates: `{seed}` (an integer), `{int:A:B}`,
`{float:A:B}` (drawn in [A, B)) and `{choice:a|b|c}`, drawn again for every session so that runs differ.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from harness import resources
from harness.core.errors import UserError

SUBMISSIONS = resources.SUBMISSIONS
ENTRY = "main.py"


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


@dataclass(frozen=True)
class Baseline:
    folder: Path
    args: str = ""  # a template (see the module's doc)
    weight: float = 1.0


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

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _draw(spec: str, rng, where: str) -> str:
    kind, _, rest = spec.partition(":")
    try:
        if kind == "seed" and not rest:
            return str(int(rng.integers(1000)))
        if kind in ("int", "float"):
            lo, hi = (float(x) for x in rest.split(":"))
            if not lo < hi:
                raise ValueError
            return str(int(rng.integers(int(lo), int(hi)))) if kind == "int" else f"{rng.uniform(lo, hi):.4g}"
        if kind == "choice" and rest:
            options = rest.split("|")
            return options[int(rng.integers(len(options)))]
    except ValueError:
        pass
    raise UserError(f"{where}: {{{spec}}} is not a placeholder (use {{seed}}, {{int:A:B}}, {{float:A:B}} with A < B, "
                    f"{{choice:a|b}})")


def draw_args(template: str, rng, where: str = "args") -> str:
    """TEMPLATE with each placeholder drawn from RNG."""
    return _PLACEHOLDER.sub(lambda m: _draw(m.group(1), rng, where), template)


def _checked(folder: Path, where: str) -> Path:
    folder = folder.expanduser().resolve()
    if not (folder / ENTRY).is_file():
        raise UserError(f"{where}: {folder} has no {ENTRY} (a baseline folder is an NSML entry)")
    return folder


def parse_cli(values: tuple[str, ...] | list[str]) -> dict[str, list[Baseline]]:
    """`--baseline TASK=FOLDER`, repeated: TASK → its baselines, in the order given (the strongest first)."""
    out: dict[str, list[Baseline]] = {}
    for value in values:
        task, sep, folder = value.partition("=")
        if not sep or not task or not folder:
            raise UserError(f"--baseline: expected TASK=FOLDER, got {value!r}")
        out.setdefault(task, []).append(Baseline(_checked(Path(folder), f"--baseline {value}")))
    return out


def from_manifest(extra: dict, task_folder: Path, where: str) -> list[Baseline]:
    """The `[simulate]` table of a task.toml (its keys checked by core.schema; its entries here)."""
    entries = (extra.get("simulate") or {}).get("baselines") or []
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}: simulate.baselines[{i}]"
        if isinstance(entry, str):
            entry = {"folder": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str):
            raise UserError(f"{at}: expected a folder, or a table with folder (and args, weight)")
        unknown = set(entry) - {"folder", "args", "weight"}
        if unknown:
            raise UserError(f"{at}: unknown key {sorted(unknown)[0]!r} (known: folder, args, weight)")
        args, weight = entry.get("args", ""), entry.get("weight", 1.0)
        if not isinstance(args, str):
            raise UserError(f"{at}.args: expected a string, got {args!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < 1e6:
            raise UserError(f"{at}.weight: expected a number above 0, got {weight!r}")
        draw_args(args, _Probe(), f"{at}.args")  # a bad placeholder is found now, not in the middle of a round
        rel = Path(entry["folder"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(f"{at}.folder: {entry['folder']!r} must be a path inside the task's folder")
        out.append(Baseline(_checked(task_folder / rel, f"{at}.folder"), args, float(weight)))
    return out


class _Probe:
    """An RNG stand-in that checks a template's placeholders without drawing anything."""

    def integers(self, lo, hi=None):
        return 0

    def uniform(self, lo, hi):
        return lo


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
