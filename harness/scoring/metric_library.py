"""Declared metrics: a task's score computed by the harness from aligned per-example records.

A metric is looked up by name (``metric("ndcg@100")``) and knows its direction and its *kind*:

* ``MEAN``: the score is ``finish(mean of per-example values)`` with a monotone increasing ``finish`` (identity,
  or the square root for RMSE): accuracy, rmse (mean squared error, then sqrt), mae, map@k, ndcg@k.
* ``CELLS``: the score is a function of the counts of a finite set of per-example cells (the confusion matrix):
  balanced_accuracy, f1 (macro: the unweighted mean of the per-class F1 over the classes that appear in the
  labels or the predictions).
* ``WHOLE``: the score needs the whole sample in order: gap (global average precision).

Each metric turns records into a :class:`Sample`, the form that resampling needs: per-example values, per-example
cells, or GAP's confidence-sorted relevance. Every sample scores any reweighting of its examples
(``on_weights``: a bootstrap resample is a vector of multiplicities), so intervals, paired comparisons and
shake-up estimates (harness.scoring.uncertainty) never re-parse or re-sort anything.

Records are aligned with the label file (one entry per test example, in its order); harness.scoring.metric_records
builds them from a task's label and prediction files.
"""
from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from harness.core.enums import Direction
from harness.core.errors import UserError


class Kind(str, enum.Enum):
    MEAN = "mean"  # finish(mean of per-example values)
    CELLS = "cells"  # a function of per-example cell counts (a confusion matrix)
    WHOLE = "whole"  # needs the whole sample in order (GAP)


class LabelKind(str, enum.Enum):
    """What a label and a prediction are, for parsing (harness.scoring.metric_records)."""
    CLASS = "class"  # a class name (text, compared after normalising 1, 1.0 and "1" to one key)
    REAL = "real"  # a number
    RANKED = "ranked"  # a label is a set of relevant items, a prediction a ranked list of items
    SCORED_CLASS = "scored_class"  # a label is a class or none (-1 / empty); a prediction a class + confidence


@dataclass(frozen=True)
class Records:
    """Aligned per-example records, one entry per test example (in the label file's order).

    labels: (n,) class codes (int64), targets (float64), or for ranked metrics an object array of int64 arrays
        (the relevant items); GAP: -1 for an example with no ground-truth class.
    predictions: (n,) class codes or numbers; ranked metrics: (n, k) int64 item lists padded with -1;
        GAP: -1 for an example without a prediction.
    confidences: GAP only, (n,) float64, NaN where there is no prediction.
    order: GAP only, (n,) the prediction's position in its file (ties in confidence keep file order, as the
        evaluator's stable sort does).
    """
    labels: np.ndarray
    predictions: np.ndarray
    confidences: np.ndarray | None = None
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx) -> "Records":
        """The records of the examples at IDX (a public or private half)."""
        idx = np.asarray(idx)
        pick = (lambda a: None if a is None else a[idx])
        return replace(self, labels=self.labels[idx], predictions=self.predictions[idx],
                       confidences=pick(self.confidences), order=pick(self.order))


# -- samples: what a metric makes of records, ready to resample ---------------------------------------------------
class Sample:
    """One submission's records as the metric sees them. ``on_weights(w)``: the scores of the reweighted samples,
    w a (c, n) array of example multiplicities (a bootstrap resample: counts summing to n)."""
    n: int

    def score(self) -> float:
        return float(self.on_weights(np.ones((1, self.n)))[0])

    def on_weights(self, w: np.ndarray) -> np.ndarray:  # pragma: no cover - every sample overrides it
        raise NotImplementedError


@dataclass
class MeanSample(Sample):
    """score = finish(mean(values)); finish is monotone increasing and vectorised."""
    values: np.ndarray
    finish: Callable[[np.ndarray], np.ndarray]

    def __post_init__(self):
        self.n = len(self.values)

    def score(self) -> float:
        return float(self.finish(np.asarray([self.values.mean()]))[0]) if self.n else float("nan")

    def on_weights(self, w):
        return self.finish((w @ self.values) / w.sum(axis=1))

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct values, each example's index into them): a few distinct values resample exactly as
        multinomial counts."""
        uniq, inverse = np.unique(self.values, return_inverse=True)
        return uniq, inverse.reshape(-1)


@dataclass
class CellSample(Sample):
    """score = stat(counts of each cell), cells: (n,) ints in [0, ncells)."""
    cell: np.ndarray
    ncells: int
    stat: Callable[[np.ndarray], np.ndarray]  # (c, ncells) counts -> (c,) scores

    def __post_init__(self):
        self.n = len(self.cell)

    def on_weights(self, w):
        counts = np.stack([np.bincount(self.cell, weights=row, minlength=self.ncells) for row in w])
        return self.stat(counts)


@dataclass
class GapSample(Sample):
    """GAP on reweighted examples: an example of weight w counts as w copies (adjacent in the confidence order).
    Copies j = 1..w of a relevant prediction after C predictions of which R relevant add
    sum_j (R+j)/(C+j) = w - (C-R) * (H(C+w) - H(C)), H the harmonic numbers."""
    ranked: np.ndarray  # example indices with a prediction, by confidence descending, file order within ties
    relevant: np.ndarray  # (len(ranked),) whether each names the right class
    truth: np.ndarray  # (n,) whether each example has a ground-truth class (counts in M)

    def __post_init__(self):
        self.n = len(self.truth)

    def on_weights(self, w):
        w = np.asarray(w, dtype=np.float64)
        m = w @ self.truth.astype(np.float64)
        if not len(self.ranked):
            return np.zeros(len(w))
        wr = np.rint(w[:, self.ranked]).astype(np.int64)  # integer multiplicities, in ranked order
        after = np.cumsum(wr, axis=1)
        before = after - wr
        rel_before = np.cumsum(wr * self.relevant, axis=1) - wr * self.relevant
        top = max(int(after[:, -1].max()), 1)
        harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
        gained = wr - (before - rel_before) * (harmonic[after] - harmonic[before])
        total = (gained * self.relevant).sum(axis=1)
        return np.divide(total, m, out=np.zeros(len(w)), where=m > 0)


# -- the metrics ---------------------------------------------------------------------------------------------------
def _identity(x):
    return x


@dataclass(frozen=True)
class Metric:
    name: str  # as declared: "accuracy", "map@10", "ndcg@100"
    direction: Direction
    kind: Kind
    label_kind: LabelKind
    description: str
    prepare: Callable[[Records], Sample] = field(repr=False)
    k: int | None = None
    # MEAN metrics: what a per-example value is, for losses (the Ladder): a higher value is better when HIGHER
    finish: Callable[[np.ndarray], np.ndarray] = field(default=_identity, repr=False)

    @property
    def per_example(self) -> bool:
        return self.kind is Kind.MEAN

    def sample(self, records: Records) -> Sample:
        return self.prepare(records)

    def score(self, records: Records) -> float:
        return self.prepare(records).score()

    def values(self, records: Records) -> np.ndarray:
        """Per-example values (MEAN metrics): the score is finish(their mean)."""
        if self.kind is not Kind.MEAN:
            raise UserError(f"{self.name} is not a mean of per-example values (it needs the whole sample)")
        return self.prepare(records).values

    def losses(self, records: Records) -> np.ndarray:
        """Per-example losses, lower better, whose mean orders submissions as the metric does (MEAN metrics):
        1 - value for a HIGHER metric in [0, 1], the value itself (squared or absolute error) for a LOWER one."""
        values = self.values(records)
        return values if self.direction is Direction.LOWER else 1.0 - values


def _classes(records: Records) -> tuple[np.ndarray, np.ndarray, int]:
    labels = np.asarray(records.labels, dtype=np.int64)
    preds = np.asarray(records.predictions, dtype=np.int64)
    ncls = int(max(labels.max(initial=-1), preds.max(initial=-1))) + 1
    return labels, preds, ncls


def _accuracy(records: Records) -> Sample:
    labels, preds, _ = _classes(records)
    return MeanSample((labels == preds).astype(np.float64), _identity)


def _confusion_sample(records: Records, stat_of: Callable[[np.ndarray], np.ndarray]) -> Sample:
    labels, preds, ncls = _classes(records)

    def stat(counts):  # (c, ncls*ncls) -> (c,)
        return stat_of(counts.reshape(len(counts), ncls, ncls))
    return CellSample(labels * ncls + preds, ncls * ncls, stat)


def _balanced(conf):
    """The mean recall over the classes present in the labels (sklearn's balanced_accuracy_score)."""
    support = conf.sum(axis=2)
    diag = np.diagonal(conf, axis1=1, axis2=2)
    recall = np.divide(diag, support, out=np.zeros_like(diag, dtype=np.float64), where=support > 0)
    present = (support > 0).sum(axis=1)
    return np.divide(recall.sum(axis=1), present, out=np.zeros(len(conf)), where=present > 0)


def _macro_f1(conf):
    """Macro F1: the mean over classes in the labels or predictions of 2TP / (2TP + FP + FN)."""
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(np.float64)
    denom = conf.sum(axis=2) + conf.sum(axis=1)  # (TP+FN) + (TP+FP)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (denom > 0).sum(axis=1)
    return np.divide(f1.sum(axis=1), present, out=np.zeros(len(conf)), where=present > 0)


def _errors(records: Records) -> np.ndarray:
    return np.asarray(records.predictions, dtype=np.float64) - np.asarray(records.labels, dtype=np.float64)


def _rmse(records):
    return MeanSample(_errors(records) ** 2, np.sqrt)


def _mae(records):
    return MeanSample(np.abs(_errors(records)), _identity)


def ranked_relevance(records: Records, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rel, sizes): rel (n, k) whether the item at each rank is relevant (an item repeated in a list counts
    once, at its first rank); sizes (n,) the number of distinct relevant items of each example."""
    preds = np.asarray(records.predictions, dtype=np.int64).reshape(len(records), -1)[:, :k]
    n, width = preds.shape
    if width < k:
        preds = np.hstack([preds, np.full((n, k - width), -1, dtype=np.int64)])
    sets = [np.unique(np.asarray(s, dtype=np.int64)) for s in records.labels]
    sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=n)
    items = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    span = int(max(preds.max(initial=0), items.max(initial=0))) + 1
    rows = np.arange(n, dtype=np.int64)[:, None]
    truth_codes = np.repeat(np.arange(n, dtype=np.int64), sizes) * span + items
    rel = np.isin(rows * span + preds, truth_codes) & (preds >= 0)
    order = np.argsort(preds, axis=1, kind="stable")  # later repeats of an item within a row are not relevant
    sorted_items = np.take_along_axis(preds, order, axis=1)
    repeat = np.zeros_like(rel)
    np.put_along_axis(repeat, order[:, 1:], sorted_items[:, 1:] == sorted_items[:, :-1], axis=1)
    return rel & ~repeat, sizes


def _ndcg(k):
    def prepare(records):
        rel, sizes = ranked_relevance(records, k)
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.concatenate([[1.0], np.cumsum(discounts)])[np.minimum(sizes, k)]
        return MeanSample(np.where(sizes > 0, (rel * discounts).sum(axis=1) / ideal, 0.0), _identity)
    return prepare


def _map(k):
    def prepare(records):
        rel, sizes = ranked_relevance(records, k)
        precision = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
        denom = np.minimum(sizes, k)
        ap = np.divide((precision * rel).sum(axis=1), denom, out=np.zeros(len(sizes)), where=denom > 0)
        return MeanSample(ap, _identity)
    return prepare


def _gap(records: Records) -> Sample:
    labels = np.asarray(records.labels, dtype=np.int64)
    preds = np.asarray(records.predictions, dtype=np.int64)
    conf = (np.asarray(records.confidences, dtype=np.float64) if records.confidences is not None
            else np.where(preds >= 0, 1.0, np.nan))
    order = np.asarray(records.order) if records.order is not None else np.arange(len(labels))
    has = (preds >= 0) & ~np.isnan(conf)
    idx = np.flatnonzero(has)
    ranked = idx[np.lexsort((order[idx], -conf[idx]))]
    return GapSample(ranked, (preds[ranked] == labels[ranked]) & (labels[ranked] >= 0), labels >= 0)


_FIXED = {
    "accuracy": (Direction.HIGHER, Kind.MEAN, LabelKind.CLASS, _accuracy, _identity,
                 "the share of examples whose predicted class is the label"),
    "balanced_accuracy": (Direction.HIGHER, Kind.CELLS, LabelKind.CLASS,
                          lambda r: _confusion_sample(r, _balanced), _identity,
                          "the mean over the label classes of each class's recall"),
    "f1": (Direction.HIGHER, Kind.CELLS, LabelKind.CLASS, lambda r: _confusion_sample(r, _macro_f1), _identity,
           "macro F1: the unweighted mean over classes (in the labels or predictions) of 2TP / (2TP + FP + FN)"),
    "rmse": (Direction.LOWER, Kind.MEAN, LabelKind.REAL, _rmse, np.sqrt,
             "root mean squared error: the square root of the mean of (prediction - label)^2"),
    "mae": (Direction.LOWER, Kind.MEAN, LabelKind.REAL, _mae, _identity,
            "mean absolute error: the mean of |prediction - label|"),
    "gap": (Direction.HIGHER, Kind.WHOLE, LabelKind.SCORED_CLASS, _gap, _identity,
            "global average precision: predictions sorted by confidence, (1/M) sum_i P(i) rel(i), M the number of "
            "examples with a ground-truth class"),
}
_AT_K = {
    "map": (_map, "mean average precision at {k}: per example, the sum over the first {k} ranks of the precision at "
                  "each relevant item, divided by min(relevant items, {k}); averaged over examples"),
    "ndcg": (_ndcg, "mean nDCG at {k} with binary relevance: DCG of the first {k} ranks over the ideal DCG"),
}
NAMES = tuple(_FIXED) + tuple(f"{base}@k" for base in _AT_K)


def metric(name: str) -> Metric:
    """The declared metric called NAME ("accuracy", "map@10", "ndcg@100", ...); an unknown name is a UserError
    that suggests the nearest known one."""
    text = str(name).strip().lower()
    if text in _FIXED:
        direction, kind, label_kind, prepare, finish, description = _FIXED[text]
        return Metric(text, direction, kind, label_kind, description, prepare, None, finish)
    match = re.fullmatch(r"([a-z_]+)@([0-9]+)", text)
    if match and match.group(1) in _AT_K and int(match.group(2)) > 0:
        base, k = match.group(1), int(match.group(2))
        build, description = _AT_K[base]
        return Metric(f"{base}@{k}", Direction.HIGHER, Kind.MEAN, LabelKind.RANKED, description.format(k=k),
                      build(k), k)
    base = text.split("@")[0]
    if base in _AT_K:
        raise UserError(f"metric {name!r}: {base} needs a cut-off, e.g. {base}@10")
    near = difflib.get_close_matches(base, list(_FIXED) + list(_AT_K), n=1, cutoff=0.6)
    hint = f" (did you mean {near[0] + ('@k' if near[0] in _AT_K else '')!r}?)" if near else ""
    raise UserError(f"unknown metric {name!r}{hint}; known: {', '.join(NAMES)}")
