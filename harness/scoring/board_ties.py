"""Statistical tie marks on a board: neighbours whose order the test set cannot tell apart.

For the board's top TOP entries, ranked best first, the paired-bootstrap probability that each entry beats the
next is computed from the per-example values kept when each was graded (harness.scoring.score_interval, mean
metrics: accuracy, rmse, mae, map@k, ndcg@k): the same resampled test examples for both, the sign of the mean
of their differences (the metric's finish is monotone). Where that probability is below THRESHOLD the next entry
joins the entry's tie group (harness.scoring.uncertainty.groups_from_probabilities). Ranks stay the board's rule;
a group is information. Results are cached by the entries' graded files, so a board read again costs nothing.
"""
from __future__ import annotations

from pathlib import Path

from harness.core.enums import Direction

TOP = 50
THRESHOLD = 0.9
RESAMPLES = 1000
SEED = 0
_CACHE: dict[tuple, list] = {}
_CACHE_SIZE = 128


def kept_path(run_dir: str, name: str | None = None) -> Path:
    from .grade import prediction_path
    from .score_interval import PER_EXAMPLE
    return prediction_path(run_dir).parent / (name or PER_EXAMPLE)


def _stamp(run_dir: str, private: bool = False) -> tuple:
    """What a board's tie marks are cached by: the kept files they read (a public board: never the private
    half's, which a later grade writes when the private half is scored: its next read would tell when)."""
    from .score_interval import DRAWS, PER_EXAMPLE, PRIVATE_KEPT
    out = []
    for name in (PER_EXAMPLE, DRAWS) + ((PRIVATE_KEPT[PER_EXAMPLE], PRIVATE_KEPT[DRAWS]) if private else ()):
        try:
            st = kept_path(run_dir, name).stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def _load(path: Path, ndim: int):
    import numpy as np
    try:
        with open(path, "rb") as fh:
            array = np.load(fh, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.ndim == ndim and array.dtype == np.float64 else None


def _kept(run_dir: str, name: str, ndim: int, private: bool):
    """The array kept as NAME when the submission was graded; PRIVATE: with its private half as a later grade kept
    it beside (score_interval.PRIVATE_KEPT: NaN but for that half, whose part of NAME is NaN in turn)."""
    from .score_interval import PRIVATE_KEPT
    reported = _load(kept_path(run_dir, name), ndim)
    later = _load(kept_path(run_dir, PRIVATE_KEPT[name]), ndim) if private and reported is not None else None
    if later is None or later.shape != reported.shape:
        return reported
    import numpy as np
    return np.where(np.isnan(later), reported, later)


def kept_values(run_dir: str):
    """The per-example values kept when the submission was graded (mean metrics; a round's: both halves, the
    private one's as scored after the report), or None (also for values that would overflow when resampled, or a
    round's private half that had none: uncertainty.summable). It reads the private half: the caller's rule."""
    return usable(kept_halves(run_dir, private=True))


def kept_halves(run_dir: str, private: bool = False):
    """kept_values() as kept, for a caller that cuts one half of a round out of them and checks it (usable()):
    a round's private half may be NaN (its values could not be kept: score_interval._by_part), or None. PRIVATE:
    for the private half (scored after the submit was reported: its own file)."""
    from .score_interval import PER_EXAMPLE
    return _kept(run_dir, PER_EXAMPLE, 1, private)


def usable(values):
    """VALUES when they can be resampled and compared (uncertainty.summable), else None."""
    from .uncertainty import summable
    return values if values is not None and summable(values) else None


def kept_draws(run_dir: str, private: bool = False):
    """A whole-sample metric's scores on the common resamples (one row per half), kept at grading, or None.
    PRIVATE: with the private half's row (from its own file, when it was scored after the report)."""
    from .score_interval import DRAWS
    return _kept(run_dir, DRAWS, 2, private)


def beats_next(run_dirs: list[str], direction: Direction, split: tuple | None = None) -> list | None:
    """The probability that each entry beats the next (len - 1 of them; None for a pair that cannot be compared:
    either has nothing kept, or they were kept on different test sets), or None for fewer than two entries.
    SPLIT: (fraction, seed, task, "public" or "private") of a round: the examples of that half. Mean metrics
    compare their per-example values; whole-sample metrics (f1, balanced accuracy, GAP) their scores on the
    common resamples, which are paired by construction (harness.scoring.resampling.common_draw_scores)."""
    private = split is not None and split[3] == "private"
    key = (tuple(run_dirs), tuple(_stamp(d, private) for d in run_dirs), direction.value, split)  # (a rescore
    #                                                                                         rewrites them)
    if key in _CACHE:
        return _CACHE[key]
    if len(run_dirs) < 2:
        return None
    import numpy as np

    from .splits import halves
    from .uncertainty import beats_probability_of_values, share_better
    vectors = [usable(kept_halves(d)) if split is None else kept_halves(d, private) for d in run_dirs]  # (what
    #          the key's stamps are of)
    if split is not None:  # each vector's own half (a vector of another length pairs with nothing)
        cut = {n: halves(n, *split[:3])[0 if split[3] == "public" else 1] for n in {len(v) for v in vectors
                                                                                   if v is not None}}
        vectors = [None if v is None else usable(v[cut[len(v)]]) for v in vectors]
    row = 1 if private else 0
    draws = [None if v is not None or (d := kept_draws(r, private)) is None or d.shape[0] <= row else d[row]
             for v, r in zip(vectors, run_dirs)]
    sign = direction.sign
    out = []
    for a, b, da, db in zip(vectors, vectors[1:], draws, draws[1:]):
        if a is not None and b is not None and len(a) == len(b):
            out.append(beats_probability_of_values(a, b, direction, RESAMPLES, SEED))
        elif da is not None and db is not None and len(da) == len(db) and np.isfinite(da).all() \
                and np.isfinite(db).all():
            out.append(share_better(np.sign(sign * (da - db))))
        else:
            out.append(None)
    if all(p is None for p in out):
        out = None
    _remember(key, out)
    return out


def _remember(key, value) -> None:
    """Keep VALUE under KEY, dropping the oldest entry past _CACHE_SIZE (threads may race here: pop tolerates it)."""
    if len(_CACHE) >= _CACHE_SIZE:
        try:
            _CACHE.pop(next(iter(_CACHE)), None)
        except (StopIteration, RuntimeError):
            pass
    _CACHE[key] = value


def mark(rows: list[dict], run_dirs: dict, direction: Direction, rank_key: str, id_key: str,
         split: tuple | None = None) -> None:
    """Set each ranked row's `tie` (the rank span of its tie group, '2–4', or None when it stands alone) and
    `beats_next` (the probability it beats the next entry) for the board's first TOP ranked rows."""
    from .uncertainty import groups_from_probabilities
    ranked = [r for r in rows if r.get(rank_key) is not None and r.get(id_key) in run_dirs][:TOP]
    for r in rows:
        r.setdefault("tie", None)
        r.setdefault("beats_next", None)
    probs = beats_next([run_dirs[r[id_key]] for r in ranked], direction, split) if len(ranked) > 1 else None
    if probs is None:
        return
    groups = groups_from_probabilities([1.0 if p is None else p for p in probs], THRESHOLD)  # unknown: apart
    for r, p in zip(ranked, probs):
        r["beats_next"] = None if p is None else round(p, 4)
    for g in set(groups):
        members = [r for r, gg in zip(ranked, groups) if gg == g]
        if len(members) > 1:
            first, last = members[0][rank_key], members[-1][rank_key]
            span = f"{first}–{last}" if first != last else f"{first} (all)"  # equal ranks, tied by the test too
            for r in members:
                r["tie"] = span


def mark_board(rows: list[dict], rows_fn, direction: Direction, rank_key: str, id_key: str,
               split: tuple | None = None) -> None:
    """mark() for a board read through ROWS_FN (harness.store.quick): the run folders of its ranked
    submissions in one query; nothing (not even numpy) when no row has an interval of this board (a public
    board's never looks at the private ones: review of stop 51, a private interval kept later made the public
    board's next read do more at that moment)."""
    from harness.store import read_sql
    fields = ("private_interval",) if split is not None and split[3] == "private" else ("interval", "public_interval")
    if not any(r.get(f) for r in rows for f in fields):
        for r in rows:
            r.setdefault("tie", None)
            r.setdefault("beats_next", None)
        return
    ids = [r[id_key] for r in rows if r.get(rank_key) is not None and r.get(id_key) is not None][:TOP]
    mark(rows, read_sql.run_dirs(rows_fn, ids), direction, rank_key, id_key, split)


SHAKEUP_RESAMPLES = 400


def expected_shakeup(rows: list[dict], rows_fn, direction: Direction, split: tuple) -> dict | None:
    """A round's expected shake-up from its teams' final submissions (the private board's entries): per team the
    probability that its rank on a public board holds on a private board when both are drawn from the whole
    test set (noise alone), how many teams noise moves on average, and how many moved on the actual halves with
    the share of draws moving at least as many (small: more shake-up than noise explains). None without kept
    values (a team without them sits out; fewer than two left: None). It reads the private half: organizers only
    before close (the caller's rule)."""
    if not any(r.get("public_interval") for r in rows):
        return None
    from harness.store import read_sql
    entries = [r for r in rows if r.get("final_submission") is not None][:TOP]
    dirs = read_sql.run_dirs(rows_fn, [r["final_submission"] for r in entries])
    run_dirs = [dirs.get(r["final_submission"], "") for r in entries]
    key = ("shakeup", tuple(run_dirs), tuple(_stamp(d, True) for d in run_dirs), direction.value, split)
    if key in _CACHE:
        return _CACHE[key]
    vectors = {r["team"]: v for r, d in zip(entries, run_dirs) if (v := kept_values(d)) is not None}
    size = _most_common([len(v) for v in vectors.values()])  # a team without kept values (or of another test
    vectors = {t: v for t, v in vectors.items() if len(v) == size}  # set) sits out
    if len(vectors) < 2:
        out = _shakeup_from_draws(entries, run_dirs, rows_fn, direction)
        _remember(key, out)
        return out
    from .splits import halves
    from .uncertainty import shake_up_of_values
    public, private = halves(len(next(iter(vectors.values()))), *split[:3])
    got = shake_up_of_values(vectors, direction, public, private, "whole", SHAKEUP_RESAMPLES, SEED)
    out = {"hold": {t: round(p, 3) for t, p in got.hold.items()}, "teams": len(vectors), "moved": got.moved,
           "expected_moved": round(got.expected_moved, 2), "p_value": round(got.p_value, 3), "pool": "whole"}
    _remember(key, out)
    return out


def _most_common(sizes: list[int]) -> int | None:
    """The size most entries share (None for none): entries of another size sit out of a shake-up."""
    return max(set(sizes), key=sizes.count) if sizes else None


def _shakeup_from_draws(entries: list[dict], run_dirs: list[str], rows_fn, direction: Direction) -> dict | None:
    """The expected shake-up of a whole-sample metric (f1, balanced accuracy, GAP) from its finals' common draws:
    each draw's public board from the public half's row and private board from the private half's (the same
    resampled examples for every team), so a rank's hold includes the split's own luck; the observed moves are
    the finals' own public and private ranks. No p-value: the draws are of these very halves."""
    import numpy as np

    from .uncertainty import ranks
    usable = [(r, d) for r, run_dir in zip(entries, run_dirs) if (d := kept_draws(run_dir, True)) is not None
              and d.shape[0] >= 2 and np.isfinite(d[:2]).all()]  # a team without them sits out
    width = _most_common([d.shape[1] for _, d in usable])
    usable = [(r, d) for r, d in usable if d.shape[1] == width]
    if len(usable) < 2:
        return None
    entries, draws = [r for r, _ in usable], [d for _, d in usable]
    ids = [r["final_submission"] for r in entries]
    public_of = dict(rows_fn("SELECT id, score FROM submissions WHERE id IN (:ids)", ids=ids))
    observed_pub = ranks(np.array([float(public_of[i]) for i in ids]), direction)
    observed_priv = ranks(np.array([float(r["private"]) for r in entries]), direction)
    pub = ranks(np.stack([d[0] for d in draws], axis=1), direction)  # (resamples, teams)
    priv = ranks(np.stack([d[1] for d in draws], axis=1), direction)
    same = pub == priv
    return {"hold": {r["team"]: round(float(same[:, i].mean()), 3) for i, r in enumerate(entries)},
            "teams": len(entries), "moved": int((observed_pub != observed_priv).sum()),
            "expected_moved": round(float((~same).sum(axis=1).mean()), 2), "p_value": None, "pool": "halves"}
