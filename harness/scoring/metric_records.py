"""A task's label and prediction files as aligned records for a declared metric (harness.scoring.metric_library).

The files are read by the task's ``[split]`` declaration (harness.scoring.splits: csv, json or lines, and the key
that ties a prediction to a label; no key: by position), the same reader that cuts public/private halves. Which
field holds the value:

* csv: the label's one column besides the key (or ``Fields.label``); the prediction's first column besides the key
  and ``confidence`` (or ``Fields.prediction``); GAP's confidence is the ``confidence`` column. A pack whose files
  carry other fields names them in its ``[split]`` table: ``label_field``, ``prediction_field``,
  ``confidence_field``.
* json: the same rule over each record's fields (a list of records, each an object).
* lines: the stripped line.

Values by the metric's label kind: classes compare as text with 1, 1.0 and "1" one class; numbers as floats;
ranked items (a JSON list, or a space-separated csv field) as integers or, when any is not, as text; a GAP label
of -1 or empty is an example with no ground-truth class. Validation stays the evaluator's job: these helpers
raise UserError for what they cannot line up (a missing, duplicate or unknown key; a count mismatch), and parse
valid files to the value the evaluator prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import UserError

from .metric_library import LabelKind, Metric, Records, metric
from .splits import SplitFormat, _key_of, _norm, read_records

CONFIDENCE = "confidence"


@dataclass(frozen=True)
class Fields:
    """Which field holds the label and the prediction (None: the rule in the module's docstring)."""
    label: str | None = None
    prediction: str | None = None
    confidence: str = CONFIDENCE

    @classmethod
    def declared(cls, split: dict) -> "Fields":
        """The fields a task's [split] table names (label_field, prediction_field, confidence_field)."""
        return cls(split.get("label_field"), split.get("prediction_field"), split.get("confidence_field", CONFIDENCE))


def _field_names(records: list, fmt: str, header) -> list[str]:
    if fmt == "csv":
        return list(header or [])
    if fmt == "json":
        first = next((r for r in records if isinstance(r, dict)), {})
        return list(first)
    return []


def _pick(names: list[str], key: str | None, chosen: str | None, skip: tuple[str, ...], what: str) -> str | None:
    if chosen is not None:
        if chosen not in names:
            raise UserError(f"{what}: no {chosen!r} field (fields: {', '.join(names)})")
        return chosen
    if not names:
        return None  # lines: the line itself
    rest = [n for n in names if n != key and n not in skip]
    if not rest:
        raise UserError(f"{what}: no value field besides the key {key!r}")
    return rest[0]


def _value(record, fmt: str, header, name: str | None):
    if fmt == "lines" or name is None:
        return str(record).strip()
    if fmt == "csv":
        i = header.index(name)
        return record[i] if i < len(record) else ""
    if not isinstance(record, dict):
        raise UserError(f"expected JSON objects, got {type(record).__name__}")
    return record.get(name)


def _align(labels: list, lheader, preds: list, pheader, fmt: SplitFormat) -> tuple[list, np.ndarray]:
    """For each label record, the index of its prediction record (-1: none); and the predictions in label order."""
    if fmt.key is None:
        if len(preds) != len(labels):
            raise UserError(f"expected {len(labels)} prediction records (one per test example), got {len(preds)}")
        return preds, np.arange(len(labels))
    if "lines" in (fmt.label, fmt.prediction):
        raise UserError("a key cannot tie lines to records: declare split.key only for csv and json files")
    where: dict[str, int] = {}
    for i, r in enumerate(preds):
        k = _key_of(r, fmt.prediction, pheader, fmt.key)
        if k is None:
            raise UserError(f"prediction record {i + 1} has no {fmt.key!r}")
        if k in where:
            raise UserError(f"duplicate prediction for {fmt.key} {k!r}")
        where[k] = i
    keys = [_key_of(r, fmt.label, lheader, fmt.key) for r in labels]
    unknown = set(where) - set(keys)
    if unknown:
        raise UserError(f"{len(unknown)} predictions for unknown {fmt.key}s, e.g. {sorted(unknown)[0]!r}")
    position = np.array([where.get(k, -1) for k in keys], dtype=np.int64)
    return [preds[p] if p >= 0 else None for p in position], position


def _items(value) -> list:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)):
        raise UserError(f"expected a list of items, got {str(value)[:40]!r}")
    return list(value)


def _ranked(labels: list, preds: list) -> tuple[np.ndarray, np.ndarray]:
    lab, pred = [_items(v) for v in labels], [_items(v) for v in preds]
    try:  # integer items as they are (the common case, vectorised)
        if any(isinstance(x, bool) or not float(x).is_integer() for seq in lab + pred for x in seq):
            raise ValueError
        lab_codes = [np.asarray([int(x) for x in seq], dtype=np.int64) for seq in lab]
        pred_codes = [[int(x) for x in seq] for seq in pred]
        if min((x for seq in pred_codes for x in seq), default=0) < 0 or \
                min((c.min(initial=0) for c in lab_codes), default=0) < 0:
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # anything else (past int64 too): text items, in one codebook
        book: dict[str, int] = {}
        lab_codes = [np.asarray([book.setdefault(_norm(x), len(book)) for x in seq], dtype=np.int64) for seq in lab]
        pred_codes = [[book.setdefault(_norm(x), len(book)) for x in seq] for seq in pred]
    width = max((len(p) for p in pred_codes), default=0)
    matrix = np.full((len(pred_codes), max(width, 1)), -1, dtype=np.int64)
    for i, p in enumerate(pred_codes):
        matrix[i, :len(p)] = p
    holder = np.empty(len(lab_codes), dtype=object)
    holder[:] = lab_codes
    return holder, matrix


def _number(value, what: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise UserError(f"{what}: expected a number, got {str(value)[:40]!r}") from None


def build_records(m: Metric, label_values: list, pred_values: list, confidences: list | None = None,
                  order: np.ndarray | None = None) -> Records:
    """Records for metric M from label values and aligned prediction values (None: no prediction)."""
    kind = m.label_kind
    missing = sum(v is None for v in pred_values)
    if missing and kind is not LabelKind.SCORED_CLASS:
        raise UserError(f"{missing} test examples have no prediction")
    if kind is LabelKind.REAL:
        return Records(np.array([_number(v, "label") for v in label_values]),
                       np.array([_number(v, "prediction") for v in pred_values]))
    if kind is LabelKind.RANKED:
        return Records(*_ranked(label_values, pred_values))
    book: dict[str, int] = {}
    if kind is LabelKind.CLASS:
        lab = np.array([book.setdefault(_norm(v), len(book)) for v in label_values], dtype=np.int64)
        pred = np.array([book.setdefault(_norm(v), len(book)) for v in pred_values], dtype=np.int64)
        return Records(lab, pred)
    none = {"-1", "", "None", "nan"}
    lab = np.array([-1 if _norm(v) in none else book.setdefault(_norm(v), len(book)) for v in label_values],
                   dtype=np.int64)
    pred = np.array([-1 if v is None else book.setdefault(_norm(v), len(book)) for v in pred_values], dtype=np.int64)
    conf = np.array([np.nan if v is None else _number(c, "confidence")
                     for v, c in zip(pred_values, confidences or [1.0] * len(pred_values))], dtype=np.float64)
    return Records(lab, pred, conf, order if order is not None else np.arange(len(lab)))


@dataclass
class Aligned:
    """A label file's values, with the prediction's lined up with them (None: no prediction), not coded yet.
    Records are coded per cut (`records`): class codes, and so how large a class table is, come from that cut's
    rows alone, so what a round's public half computes never depends on the private half's labels (review: the
    codes of the whole file made a crafted prediction's table outgrow the interval child's memory, or not, by how
    many classes the private half held)."""
    labels: list
    predictions: list
    confidences: list | None
    position: np.ndarray  # each label's prediction's place in the prediction file (-1: none)

    def __len__(self) -> int:
        return len(self.labels)

    def records(self, m: Metric, cut: np.ndarray | None = None) -> Records:
        """Records for metric M of the rows CUT (None: all of them)."""
        if cut is None:
            return build_records(m, self.labels, self.predictions, self.confidences, self.position)
        pick = [int(i) for i in cut]
        return build_records(m, [self.labels[i] for i in pick], [self.predictions[i] for i in pick],
                             None if self.confidences is None else [self.confidences[i] for i in pick],
                             self.position[np.asarray(pick, dtype=np.int64)])


def read_aligned(m: Metric, label_path: Path, prediction_path: Path, fmt: SplitFormat,
                 fields: Fields | None = None) -> Records:
    """Records for metric M from a label file and a prediction file laid out as FMT."""
    return align(m, label_path, prediction_path, fmt, fields).records(m)


def align(m: Metric, label_path: Path, prediction_path: Path, fmt: SplitFormat,
          fields: Fields | None = None) -> Aligned:
    """A label file's and a prediction file's values lined up, as metric M reads them (FMT: their layout)."""
    fields = fields or Fields()
    try:
        labels, lheader = read_records(Path(label_path), fmt.label)
        preds, pheader = read_records(Path(prediction_path), fmt.prediction)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the records: {exc}") from None
    lname = _pick(_field_names(labels, fmt.label, lheader), fmt.key, fields.label, (), "labels")
    skip = (fields.confidence,)
    pname = _pick(_field_names(preds, fmt.prediction, pheader), fmt.key, fields.prediction, skip, "predictions")
    aligned, position = _align(labels, lheader, preds, pheader, fmt)
    label_values = [_value(r, fmt.label, lheader, lname) for r in labels]
    pred_values = [None if r is None else _value(r, fmt.prediction, pheader, pname) for r in aligned]
    confidences = None
    if m.label_kind is LabelKind.SCORED_CLASS and fmt.prediction != "lines":
        if fields.confidence in _field_names(preds, fmt.prediction, pheader):
            confidences = [None if r is None else _value(r, fmt.prediction, pheader, fields.confidence)
                           for r in aligned]
    return Aligned(label_values, pred_values, confidences, position)


def task_records(task_folder: Path, label_path: Path, prediction_path: Path,
                 fields: Fields | None = None) -> tuple[Metric, Records]:
    """(metric, records) for a task pack whose manifest declares a library metric and a [split] table."""
    m, aligned = task_aligned(task_folder, label_path, prediction_path, fields)
    return m, aligned.records(m)


def task_aligned(task_folder: Path, label_path: Path, prediction_path: Path,
                 fields: Fields | None = None) -> tuple[Metric, Aligned]:
    """(metric, aligned values, not coded yet) for a task pack whose manifest declares a library metric and a
    [split] table."""
    from harness.taskpacks.registry import Manifest

    manifest = Manifest.read(Path(task_folder))
    m = metric(manifest.metric)
    if m.direction is not manifest.direction:
        raise UserError(f"{manifest.name}: {m.name} is {m.direction.value}-is-better, the manifest says "
                        f"{manifest.direction.value}")
    fmt = SplitFormat.from_manifest(manifest.extra, f"{manifest.name}/task.toml")
    return m, align(m, label_path, prediction_path, fmt, fields or Fields.declared(manifest.extra["split"]))
