"""Public/private scoring: the task's own evaluator, run on a fixed, seeded subset of the test set and on the rest.

A task pack says how its label and prediction files are laid out, in task.toml:

```toml
[split]
label = "csv"        # csv | json (a list of records) | lines
prediction = "csv"   # csv | json | lines
key = "id"           # the field that ties a prediction to a label; absent: the record's position
```

The subset is drawn from the label file's records with the round's seed and the task's name, so every
submission of a round is split the same way, and the two halves are disjoint and cover the test set.  Each half
is scored by calling ``evaluation.py`` unchanged on a label file and a prediction file cut to that half; files
next to the label (metadata an evaluator reads) stay reachable beside the cut label file.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.enums import FailureReason

if TYPE_CHECKING:
    import numpy as np
from harness.core.errors import UserError

from . import capped_child
from .evaluator import ScoreResult, check_prediction, evaluate

FORMATS = ("csv", "json", "lines")
PARTS = ("public", "private")  # a round's halves, in the order they are evaluated
PUBLIC, PRIVATE = PARTS
PUBLIC_VALUES = "evaluator_public_values.txt"  # the public half's own per-example values, kept for a later
#                                                grade of the private half alone (evaluate_split)


@dataclass
class SplitFormat:
    label: str
    prediction: str
    key: str | None = None

    @classmethod
    def from_manifest(cls, extra: dict, where: str) -> "SplitFormat":
        split = extra.get("split")
        if not isinstance(split, dict):
            raise UserError(f"{where}: no [split] table: the task cannot have a public/private board "
                            f"(declare label, prediction and key formats)")
        label, pred, key = split.get("label"), split.get("prediction", split.get("label")), split.get("key")
        for field, value in (("label", label), ("prediction", pred)):
            if value not in FORMATS:
                raise UserError(f"{where}: split.{field}: expected one of {', '.join(FORMATS)}, got {value!r}")
        if key is None and "lines" not in (label, pred) and label != pred:
            raise UserError(f"{where}: split.key: needed to match {pred} predictions to {label} labels")
        return cls(label, pred, key)


@dataclass
class SplitScores:
    """A prediction scored on both halves: the public half's score, and the private half's result (which may have
    failed: the submission still stands on its public score, with no private one; None: not evaluated)."""
    public: ScoreResult | None  # None: not evaluated (graded before: evaluate_split's PARTS)
    private: ScoreResult | None


# -- records -----------------------------------------------------------------------------------------------------
def read_records(path: Path, fmt: str) -> tuple[list, object]:
    """(records, header): csv rows as lists of strings (header apart), json list items, or text lines."""
    text = path.read_text(encoding="utf-8")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        return rows[1:], rows[0] if rows else []
    if fmt == "json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("expected a JSON list")
        return data, None
    return [ln for ln in text.splitlines() if ln.strip()], None


def write_records(path: Path, fmt: str, records: list, header) -> None:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(records)
        path.write_text(buf.getvalue(), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text("".join(f"{r}\n" for r in records), encoding="utf-8")


def _norm(value) -> str:
    """Keys compare as text, with 12, 12.0 and "12" the same key."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _key_of(record, fmt: str, header, key: str):
    if fmt == "csv":
        return _norm(record[header.index(key)]) if key in header and len(record) > header.index(key) else None
    if fmt == "json":
        return _norm(record.get(key)) if isinstance(record, dict) else None
    return None


def public_indices(n: int, fraction: float, seed: int, task: str) -> np.ndarray:
    """The label records on the public board: a fixed draw from (seed, task name); at least one each side."""
    if n < 2:
        raise UserError(f"{task}: the test set has {n} record(s); a public/private split needs two or more")
    k = min(max(int(round(n * fraction)), 1), n - 1)
    import numpy as np  # only when a split is drawn (keeps CLI start-up light)

    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    return np.sort(rng.permutation(n)[:k])


def halves(n: int, fraction: float, seed: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    public = public_indices(n, fraction, seed, task)
    import numpy as np

    private = np.setdiff1d(np.arange(n), public)
    return public, private


# -- scoring -----------------------------------------------------------------------------------------------------
def _cut(dst: Path, label: Path, prediction: Path, fmt: SplitFormat, labels: list, header, preds: list,
         pred_header, idx: np.ndarray) -> tuple[Path, Path]:
    """Write the label and prediction files of one half under dst; the label's neighbours are linked in."""
    label_dir = dst / "labels"
    label_dir.mkdir(parents=True)
    for sibling in label.parent.iterdir():
        if sibling.name != label.name:
            (label_dir / sibling.name).symlink_to(sibling.resolve())
    chosen = [labels[i] for i in idx]
    write_records(label_dir / label.name, fmt.label, chosen, header)
    if fmt.key is None:  # by position: the prediction's i-th record answers the label's i-th
        if len(preds) != len(labels):
            raise ValueError(f"expected {len(labels)} records (one per test item), got {len(preds)}")
        cut = [preds[i] for i in idx]
    else:
        if fmt.prediction == "csv" and fmt.key not in (pred_header or []):
            raise ValueError(f"no {fmt.key!r} column")
        wanted = {_key_of(r, fmt.label, header, fmt.key) for r in chosen}
        cut = [r for r in preds if _key_of(r, fmt.prediction, pred_header, fmt.key) in wanted]
    pred_path = dst / prediction.name
    write_records(pred_path, fmt.prediction, cut, pred_header)
    return label_dir / label.name, pred_path


def _unsplittable(exc: Exception) -> ScoreResult:
    return ScoreResult(None, FailureReason.INVALID_PREDICTION,
                       f"invalid prediction: cannot split it into public/private halves: {exc}")


def evaluate_split(evaluation_py: Path, prediction: Path, label: Path, fmt: SplitFormat, fraction: float, seed: int,
                   task: str, time_limit: float, memory: int | None = None,
                   call=None, values_to: Path | None = None,
                   parts: tuple[str, ...] = PARTS) -> SplitScores | ScoreResult:
    """Score each half of a round's prediction. What a participant is told before the close depends on the public
    half alone: the prediction's own checks (its size, its parse, one record per test item by position: the cut,
    in a child process with a memory and CPU cap) and the public half's score or failure. The private half's
    failure only leaves the submission without a private score, and the whole set is never scored: an evaluator
    failing there for some hidden labels (a log-loss of infinity where the prediction bets probability 0 on one
    private label) told the participant those labels, one bit per submit, and its score would tell the private
    one. A failure comes back as one ScoreResult; otherwise SplitScores, whose private result may have failed.
    VALUES_TO: the evaluator's per-example values of both halves, in the label file's order (merge_values).
    PARTS: the halves evaluated; ("public",) reports a submit before its private half is scored (the time it took
    says nothing of that half), ("private",) scores that half later, with the public half's values as its
    evaluation kept them (PUBLIC_VALUES, beside VALUES_TO)."""
    kept = None if values_to is None else values_to.parent / PUBLIC_VALUES
    if values_to is not None:
        values_to.unlink(missing_ok=True)
    bad = check_prediction(prediction)
    if bad is not None:
        return bad
    results = {}
    with tempfile.TemporaryDirectory(prefix="harness-split-") as tmp:
        refused = _cut_in_child(prediction, label, fmt, fraction, seed, task, Path(tmp))
        if refused is not None:
            return refused
        for name in parts:
            cut = Path(tmp) / name
            result = evaluate(evaluation_py, cut / prediction.name, cut / "labels" / label.name, time_limit, memory,
                              call, None if values_to is None else Path(tmp) / f"{name}.values")
            if not result.ok:
                result.message = f"{name} half: {result.message}"
                if name == "public":
                    return result
            results[name] = result
        if kept is not None:
            _keep_public_values(Path(tmp) / "public.values", kept, "public" in parts)
            merge_values(Path(tmp), label, fmt, (fraction, seed, task), values_to,
                         private="private" in results and results["private"].ok)
    return SplitScores(results.get("public"), results.get("private"))


def _keep_public_values(values: Path, kept: Path, evaluated: bool) -> None:
    """The public half's values (VALUES) kept at KEPT when it was EVALUATED, else taken back from there."""
    if evaluated and values.is_file():
        shutil.copyfile(values, kept)
    elif evaluated:
        kept.unlink(missing_ok=True)
    elif kept.is_file():
        shutil.copyfile(kept, values)


def merge_values(tmp: Path, label: Path, fmt: SplitFormat, split: tuple, values_to: Path,
                 private: bool = True) -> None:
    """The halves' per-example values (TMP/public.values, TMP/private.values: each in its cut label file's order)
    as one file in the label file's order, at VALUES_TO; nothing when the public half wrote none. A public half's
    values are written as the evaluator wrote them (score_interval says what is wrong with them); a private half's
    become `nan` unless they are one number per example of it (PRIVATE false: its evaluation failed)."""
    try:
        public_values = (tmp / "public.values").read_text(encoding="utf-8").split()
        n = len(read_records(label, fmt.label)[0])
    except (OSError, UnicodeDecodeError, UserError, ValueError):
        return
    public, private_idx = halves(n, *split)
    if len(public_values) != len(public):  # (the count note follows: values not one per test example)
        values_to.write_text("\n".join(public_values) + "\n")
        return
    private_values = ["nan"] * len(private_idx)
    try:
        got = (tmp / "private.values").read_text(encoding="utf-8").split() if private else []
        if len(got) == len(private_idx):
            for token in got:
                float(token)  # (raises ValueError for a token that is no number)
            private_values = got
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    merged = [""] * n
    for i, value in zip(public, public_values):
        merged[i] = value
    for i, value in zip(private_idx, private_values):
        merged[i] = value
    values_to.write_text("\n".join(merged) + "\n")


# whatever parsing the participant's bytes raises names the prediction invalid (counted), never a harness error
# (uncounted, and so a failure an infer could choose): csv's field limit, JSON nested past the recursion limit,
# records of the wrong type, and anything else the cut raises
UNSPLITTABLE, SPLIT_OUT_OF_MEMORY = 2, 3  # the child's exit statuses
SPLIT_MEMORY, SPLIT_CPU_SECONDS, SPLIT_WALL_SECONDS = 2 << 30, 120, 300


def cut_halves(label: Path, prediction: Path, fmt: SplitFormat, fraction: float, seed: int, task: str,
               out: Path) -> None:
    """The child's work: each half's label and prediction files under OUT/public and OUT/private."""
    labels, header = read_records(label, fmt.label)
    public, private = halves(len(labels), fraction, seed, task)
    preds, pred_header = read_records(prediction, fmt.prediction)  # read once, cut twice
    for name, idx in (("public", public), ("private", private)):
        _cut(out / name, label, prediction, fmt, labels, header, preds, pred_header, idx)


def _cut_in_child(prediction: Path, label: Path, fmt: SplitFormat, fraction: float, seed: int, task: str,
                  out: Path, memory: int = SPLIT_MEMORY) -> ScoreResult | None:
    """cut_halves in a capped child process: None when both halves are cut, else the prediction's failure (a
    parse, or the caps: the prediction's doing when it is far larger than its labels, scoring.evaluator)."""
    from dataclasses import asdict
    job = {"label": str(label), "prediction": str(prediction), "fmt": asdict(fmt), "fraction": fraction,
           "seed": seed, "task": task, "out": str(out), "memory": memory}
    proc = capped_child.run(__name__, job, SPLIT_WALL_SECONDS)
    if proc is not None and proc.returncode == 0:
        return None
    if proc is not None and proc.returncode == UNSPLITTABLE:
        return ScoreResult(None, FailureReason.INVALID_PREDICTION, proc.stdout.strip().splitlines()[-1][:500]
                           if proc.stdout.strip() else "invalid prediction: cannot split it into public/private halves")
    from .evaluator import out_of_bounds
    return out_of_bounds("cutting it into public/private halves ran out of its memory or time", prediction, label)


def _child(argv: list[str]) -> None:
    job = json.loads(argv[0])
    capped_child.cap(job["memory"], SPLIT_CPU_SECONDS)
    try:
        cut_halves(Path(job["label"]), Path(job["prediction"]), SplitFormat(**job["fmt"]), job["fraction"],
                   job["seed"], job["task"], Path(job["out"]))
    except MemoryError:
        raise SystemExit(SPLIT_OUT_OF_MEMORY) from None
    except Exception as exc:  # noqa: BLE001 - the participant's bytes: counted as theirs (see above)
        print(_unsplittable(exc).message.replace("\n", " "))
        raise SystemExit(UNSPLITTABLE) from None


if __name__ == "__main__":
    _child(sys.argv[1:])
