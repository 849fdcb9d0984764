"""Scaffolds: `nsml dataset init NAME` (a task pack in NSML layout with a tiny generated data set) and `nsml init`
(a participant entry for such a pack). What they write is what README.md shows, so a newcomer's first pack and
first entry pass `nsml dataset check` and `nsml check` before anything is replaced.

The pack's task: each row has two numbers x, y in [0, 1); the label is 1 when x + y > 1, else 0. Inputs are CSV
(`id,x,y`), labels and predictions CSV (`id,label`), the metric accuracy. The entry learns it with a small
search for a cut on x + y in plain Python, so both run with nothing installed beyond the harness.
May import: taskpacks, core.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

from harness.core.errors import UserError
from harness.taskpacks import layout
from harness.taskpacks.registry import MANIFEST

TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ROWS = {"train": 300, "test": 100, "test_submit": 10}  # a tiny set: fast to train, to check and to score

TASK_TOML = '''\
name = "{name}"
title = "{name}: is x + y above 1? (a scaffold: replace the data, loader and evaluator with yours)"
metric = "accuracy"
direction = "higher"          # higher | lower: which score is better

[limits]
session_seconds = 600         # wall-clock limit of a training session
submit_seconds = 300          # ... of a submit's inference
scorer_seconds = 60           # ... of evaluation.py
cpus = 1                      # a run's CPU cores (the most -c may ask)
memory = "4G"                 # a run's memory limit (the most --memory may ask)

[submit]
quota = 1                     # counted submits per user (or team) per period
period_seconds = 3600

[split]                       # how a contest round cuts the test set into public and private halves
label = "csv"
prediction = "csv"
key = "id"
'''

LOADER = '''\
"""{name}'s loader (organizer side): in a submit the harness calls feed_infer with the participant's bound infer.
Replace it when your test data is not one CSV; it decides what infer gets and how predictions are written."""
import csv
import os

from nsml import DATASET_PATH


def feed_infer(output_file, infer_func):
    test_data = os.path.join(DATASET_PATH, "test", "test_data")  # test_submit's inputs in `submit -t`
    with open(test_data, newline="", encoding="utf-8") as fh:
        ids = [row["id"] for row in csv.DictReader(fh)]
    predictions = list(infer_func(test_data))  # the participant's infer: one label per row, in order
    with open(output_file, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        for row_id, label in zip(ids, predictions):
            writer.writerow([row_id, label])
'''

EVALUATOR = '''\
"""{name}'s evaluator (organizer side): accuracy of the predicted labels.

    python evaluation.py --prediction FILE --test_label_path FILE   -> prints one float

Both files are CSV with columns id,label. A malformed prediction is refused with a line starting
"invalid prediction" on stderr and a non-zero exit: the submission fails as invalid_prediction (the
participant's fault), not as scorer_error (yours).
"""
import argparse
import csv
import sys


def invalid(message):
    print(f"invalid prediction: {{message}}", file=sys.stderr)
    sys.exit(2)


def read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        return header, list(reader)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--test_label_path", required=True)
    args = parser.parse_args()
    _, label_rows = read(args.test_label_path)
    labels = {{row[0]: row[1] for row in label_rows}}
    try:
        header, rows = read(args.prediction)
    except (UnicodeDecodeError, csv.Error) as exc:
        invalid(f"not a CSV file: {{exc}}")
    if header != ["id", "label"]:
        invalid(f"expected the columns id,label, got {{','.join(header)[:100]}}")
    predicted = {{}}
    for number, row in enumerate(rows, 2):
        if len(row) != 2:
            invalid(f"line {{number}}: expected 2 fields, got {{len(row)}}")
        if row[0] in predicted:
            invalid(f"line {{number}}: id {{row[0][:20]}} is predicted twice")
        predicted[row[0]] = row[1].strip()
    if predicted.keys() != labels.keys():
        missing, unknown = len(labels.keys() - predicted.keys()), len(predicted.keys() - labels.keys())
        invalid(f"expected the {{len(labels)}} test ids exactly ({{missing}} missing, {{unknown}} unknown)")
    if not labels:
        sys.exit("evaluation.py: no test labels")
    print(sum(predicted[key] == label for key, label in labels.items()) / len(labels))


if __name__ == "__main__":
    main()
'''

PACK_README = '''\
# {name}

A task pack in NSML layout, written by `nsml dataset init {name}`. It works as it is: each row has two numbers
x and y, and the label is 1 when x + y > 1. Replace what is yours to replace, then check and register it:

```bash
nsml dataset add {folder}  # checks it (layout, loader, manifest, evaluator, test_submit), registers it here
nsml dataset check {name}  # the same checks again after an edit, one row each
nsml init my-entry && nsml check my-entry -d {name}  # a participant entry that passes against it
```

| file | what it is | replace it with |
|---|---|---|
| `task.toml` | name, metric, direction, limits, submit quota, how a round splits the test set | your metric's name and direction, your limits |
| `train/train_data/train.csv` | training inputs, `id,x,y` | your training data (any files under `train/`) |
| `train/train_label` | training labels, `id,label` | your labels (a dummy file when they sit inside train_data) |
| `test/test_data` | hidden test inputs (only a submit run sees them) | your test inputs |
| `test/test_label` | hidden test labels (only the evaluator sees them) | your test labels |
| `test_submit/test_data`, `test_label` | a small public split for `nsml submit -t` (dry runs) | a few rows like the test set's |
| `data_loader.py` | `feed_infer(output_file, infer_func)`: calls the participant's infer, writes the predictions | your loader: what infer gets, how predictions are written |
| `evaluation.py` | `--prediction FILE --test_label_path FILE` → prints one float; refuses bad predictions | your metric |

If your labels and predictions are not CSV keyed by `id`, change `[split]` in task.toml (`csv`, `json` or
`lines`, and `key`) or remove it (the task then cannot be in a contest round with public and private boards).
The rows were drawn once with a fixed seed (the same task name gives the same rows). `dataset add` and
`dataset check` are organizer commands: with no `organizers` in harness.toml, the OS account that runs the
harness is one.
'''

ENTRY_MAIN = '''\
"""A participant entry, written by `nsml init`. Keep the reserved flags, nsml.bind, nsml.paused, nsml.report and
nsml.save; replace the model (a cut on the sum of a row's numbers) with yours."""
import argparse
import csv
import json
import os

import nsml
from nsml import DATASET_PATH


def read(path):  # {id: the row's numbers}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row.pop("id"): [float(v) for v in row.values()] for row in csv.DictReader(fh)}


def bind_model(model):
    def save(dir_name, **kwargs):  # dir_name: a new folder for this checkpoint
        with open(os.path.join(dir_name, "model.json"), "w") as fh:
            json.dump(model, fh)

    def load(dir_name, **kwargs):
        with open(os.path.join(dir_name, "model.json")) as fh:
            model.update(json.load(fh))

    def infer(test_data, **kwargs):  # the test CSV's path (the task's feed_infer): one label per row, in order
        return [int(sum(x) > model["cut"]) for x in read(test_data).values()]

    nsml.bind(save=save, load=load, infer=infer)


def train(model, epochs):
    x = read(os.path.join(DATASET_PATH, "train", "train_data", "train.csv"))
    y = read(os.path.join(DATASET_PATH, "train", "train_label"))

    def accuracy(cut):
        return sum((sum(v) > cut) == (y[i][0] == 1) for i, v in x.items()) / len(x)

    for epoch in range(epochs):  # a coarse-to-fine search for the best cut
        model["cut"] = max((model["cut"] + d / 2 ** (epoch + 1) for d in (-1, 0, 1)), key=accuracy)
        print(f"epoch {epoch}: cut {model['cut']:.3f}, train accuracy {accuracy(model['cut']):.3f}")
        nsml.report(summary=True, step=epoch, epoch=epoch, train__acc=accuracy(model["cut"]))
        nsml.save(epoch)  # checkpoint EPOCH: nsml submit SESSION EPOCH


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="train")  # reserved: "test" in a submit
    parser.add_argument("--pause", type=int, default=0)  # reserved: 1 when a checkpoint is to be loaded
    parser.add_argument("--iteration", default="0")  # reserved: which checkpoint
    parser.add_argument("--epochs", type=int, default=5)
    config = parser.parse_args()
    model = {"cut": 0.0}
    bind_model(model)
    if config.pause:  # a submit: the checkpoint is loaded and infer runs through the task's loader
        nsml.paused(scope=locals())
    if config.mode == "train":
        train(model, config.epochs)
'''

ENTRY_REQUIREMENTS = '''\
# Packages this entry needs beyond the harness's own environment, one a line with a version (numpy==1.26.4).
# Only names and version specifiers (no URLs, paths or pip options); installed once per set of lines.
# A first line "#nsml: IMAGE" (no space after #) chooses the environment of an older NSML contest.
'''


def _check_name(name: str) -> str:
    if not TASK_NAME.fullmatch(name):
        raise UserError(f"NAME: {name!r} is not a task name (1-128 letters, digits, '_', '.', '-', starting with a "
                        f"letter or digit)")
    return name


def _fresh_folder(folder: Path, what: str) -> bool:
    """Refuse FOLDER when it is a file or a folder with anything in it. Returns whether it already existed."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"{what}: {folder} exists and is not a folder; choose another")
    if folder.is_dir():
        if any(folder.iterdir()):
            raise UserError(f"{what}: {folder} is not empty; nothing was written (choose a new or empty folder)")
        if folder.stat().st_uid != os.getuid():  # an empty folder another account planted (in /tmp, say)
            raise UserError(f"{what}: {folder} belongs to another account; choose a folder of your own")
        return True
    return False


def _write(folder: Path, files: dict[str, str], what: str) -> list[str]:
    """Write FILES (relative path → text) into FOLDER, new or empty; on any failure leave nothing behind."""
    existed = _fresh_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            path = folder / rel
            for parent in reversed(path.relative_to(folder).parents[:-1]):
                (folder / parent).mkdir(exist_ok=True)
                if (folder / parent).is_symlink():
                    raise UserError(f"{what}: {folder / parent} became a link while it was written; nothing kept")
            # a new file, never through a link: a name planted meanwhile fails rather than writes elsewhere
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
    except BaseException:
        if existed:
            for child in folder.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return sorted(files)


def _rows(rng: random.Random, count: int, first_id: int) -> tuple[str, str]:
    """COUNT rows of the task: (inputs CSV id,x,y; labels CSV id,label)."""
    inputs, labels = ["id,x,y"], ["id,label"]
    for row_id in range(first_id, first_id + count):
        x, y = round(rng.random(), 3), round(rng.random(), 3)
        inputs.append(f"{row_id},{x},{y}")
        labels.append(f"{row_id},{int(x + y > 1)}")
    return "\n".join(inputs) + "\n", "\n".join(labels) + "\n"


def pack_files(name: str, folder_shown: str | None = None, seed: int = 0) -> dict[str, str]:
    """Every file of the scaffolded task pack NAME (relative path → text), its data drawn with SEED."""
    _check_name(name)
    rng = random.Random(f"{name}:{seed}")
    files = {MANIFEST: TASK_TOML.format(name=name),
             "README.md": PACK_README.format(name=name, folder=folder_shown or name),
             layout.LOADER: LOADER.format(name=name),
             layout.EVALUATOR: EVALUATOR.format(name=name)}
    first_id = 1
    for split, count in ROWS.items():
        inputs, labels = _rows(rng, count, first_id)
        first_id += count
        if split == layout.TRAIN:
            files[f"{layout.TRAIN}/train_data/train.csv"] = inputs
            files[f"{layout.TRAIN}/train_label"] = labels
        else:
            files[f"{split}/{layout.TEST_DATA}"] = inputs
            files[f"{split}/{layout.TEST_LABEL}"] = labels
    return files


def init_pack(name: str, folder: str | Path | None = None) -> tuple[Path, list[str]]:
    """`nsml dataset init NAME [FOLDER]`: the pack NAME in FOLDER (default ./NAME), which must be new or empty.
    Returns the folder and the files written."""
    target = Path(folder if folder is not None else name)
    written = _write(target, pack_files(name, str(target)), "FOLDER" if folder is not None else "NAME")
    return target.resolve(), written


def entry_files() -> dict[str, str]:
    """Every file of the scaffolded participant entry (relative path → text)."""
    return {"main.py": ENTRY_MAIN, "requirements.txt": ENTRY_REQUIREMENTS}


def init_entry(folder: str | Path = ".") -> tuple[Path, list[str]]:
    """`nsml init [FOLDER]`: a participant entry in FOLDER (default: here), which must be new or empty."""
    target = Path(folder)
    return target.resolve(), _write(target, entry_files(), "FOLDER")

