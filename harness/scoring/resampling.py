"""The bootstrap engine under harness.scoring.uncertainty: resampled scores of one or more samples (submissions
scored on the same test examples), each resample drawing n test examples with replacement, the same examples for
every sample (paired). Three exact ways and one approximation, chosen by what the samples are:

* cells (exact): when every sample's score depends only on counts of a few per-example cells (accuracy's
  right/wrong, a confusion matrix, any mean of few distinct values), a resample's counts of the joint cells are
  one multinomial draw: O(resamples x cells), independent of n (used while cells <= MAX_CELLS and n / 8).
* indices (exact): otherwise n int32 indices per resample, in chunks of about CHUNK_ENTRIES indices (bounded
  memory), turned into multiplicities that every sample scores (Sample.on_weights).
* strata (approximate, one mean only, past EXACT_LIMIT = n x resamples): the sorted values are cut into STRATA
  strata (equal sizes, then the strata holding the most variance halved); a resample's count of each stratum is drawn exactly (multinomial) and the sum of the values
  drawn within a stratum by its normal law (mean N mu_s, variance N sigma_s^2): the strata's means carry all but
  the within-stratum share of the variance (``within_share``: about 1e-4 for squared normal or t errors), and
  that share is still drawn, only as normal. It keeps a 100,000-example RMSE interval under 0.1 s where exact indices take over a second.

Everything is drawn from numpy's default generator seeded by the caller: the same seed gives the same numbers.
"""
from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

from .metric_library import CellSample, MeanSample, Sample

MAX_CELLS = 1024  # the most joint cells drawn as one multinomial per resample
EXACT_LIMIT = 4_000_000  # n x resamples beyond which one mean is resampled by strata (exact=None)
STRATA = 128
CHUNK_ENTRIES = 4_000_000  # int32 indices per chunk: 16 MB, plus the chunk's multiplicities


def rng_of(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def few_cells(cells: int, n: int) -> bool:
    """Whether a multinomial over CELLS beats drawing N indices (a binomial draw costs about 8 index draws)."""
    return cells <= MAX_CELLS and cells * 8 <= n


def _chunk_rows(n: int) -> int:
    return max(1, CHUNK_ENTRIES // max(n, 1))


def index_weights(rng: np.random.Generator, n: int, rows: int, pool: np.ndarray | None = None,
                  draws: int | None = None) -> np.ndarray:
    """(rows, n) multiplicities: each row DRAWS (default: len(pool), or n) examples drawn with replacement from
    POOL (default: all n)."""
    size = len(pool) if pool is not None else n
    draws = size if draws is None else draws
    idx = rng.integers(0, size, size=(rows, draws), dtype=np.int32 if size < 2**31 else np.int64)
    if pool is not None:
        idx = np.asarray(pool, dtype=np.int64)[idx]
    flat = idx.astype(np.int64) + (np.arange(rows, dtype=np.int64) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _strata(values: np.ndarray, strata: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sizes, means, standard deviations) of the sorted VALUES cut into up to STRATA strata: first STRATA / 8 of
    equal size, then the stratum holding the most variance (size x variance) halved until there are STRATA, so
    heavy tails end in small strata and the within-stratum share of the variance stays tiny."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    bounds = np.unique(np.linspace(0, n, min(max(strata // 8, 1), n) + 1).round().astype(np.int64))
    heap = [(-(z - a) * ordered[a:z].var(), int(a), int(z)) for a, z in zip(bounds[:-1], bounds[1:])]
    heapq.heapify(heap)
    while len(heap) < strata and heap[0][0] < 0:
        _, a, z = heapq.heappop(heap)
        mid = (a + z) // 2
        for lo, hi in ((a, mid), (mid, z)):
            heapq.heappush(heap, (-(hi - lo) * ordered[lo:hi].var(), lo, hi))
    parts = sorted((a, z) for _, a, z in heap)
    starts = np.array([a for a, _ in parts], dtype=np.int64)
    sizes = np.array([z - a for a, z in parts], dtype=np.float64)
    mu = np.add.reduceat(ordered, starts) / sizes
    spread = np.add.reduceat((ordered - np.repeat(mu, sizes.astype(np.int64))) ** 2, starts) / sizes
    return sizes, mu, np.sqrt(spread)


def stratified_means(values: np.ndarray, resamples: int, rng: np.random.Generator,
                     strata: int = STRATA) -> np.ndarray:
    """Resampled means of VALUES by value strata (see the module's docstring)."""
    n = len(values)
    sizes, mu, sd = _strata(values, strata)
    counts = rng.multinomial(n, sizes / n, size=resamples).astype(np.float64)
    sums = counts @ mu + (np.sqrt(counts) * sd * rng.standard_normal(counts.shape)).sum(axis=1)
    return sums / n


def within_share(values: np.ndarray, strata: int = STRATA) -> float:
    """The share of VALUES' variance within strata: the part stratified_means draws as normal, not exactly."""
    values = np.asarray(values, dtype=np.float64)
    total = values.var()
    if total == 0:
        return 0.0
    sizes, _, sd = _strata(values, strata)
    return float((sizes * sd ** 2).sum() / (len(values) * total))


def mean_resamples(values: np.ndarray, resamples: int, rng: np.random.Generator,
                   exact: bool | None = None) -> tuple[np.ndarray, str]:
    """(resampled means, the way: 'cells', 'indices' or 'strata'). exact=None picks strata past EXACT_LIMIT;
    True always resamples exact indices; False uses strata whenever there are too many distinct values."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    uniq, inverse = np.unique(values, return_inverse=True)
    if few_cells(len(uniq), n):
        freq = np.bincount(inverse.reshape(-1), minlength=len(uniq)) / n
        return rng.multinomial(n, freq, size=resamples) @ uniq / n, "cells"
    if exact is False or (exact is None and n * resamples > EXACT_LIMIT):
        return stratified_means(values, resamples, rng), "strata"
    out = np.empty(resamples)
    step = _chunk_rows(n)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.int32 if n < 2**31 else np.int64)
        out[start:start + rows] = values[idx].mean(axis=1)
    return out, "indices"


def _cell_form(sample: Sample):
    """(cells, ncells, stat of counts) or None."""
    if isinstance(sample, CellSample):
        return sample.cell, sample.ncells, sample.stat
    if isinstance(sample, MeanSample):
        uniq, inverse = sample.cells()
        if not few_cells(len(uniq), sample.n):
            return None
        return inverse, len(uniq), (lambda counts, u=uniq, f=sample.finish: f(counts @ u / counts.sum(axis=1)))
    return None


def _joint_cells(forms) -> tuple[np.ndarray, np.ndarray] | None:
    """(joint cell of each example, the distinct joint codes) when few enough."""
    code = np.zeros(len(forms[0][0]), dtype=np.int64)
    radix = 1
    for cells, ncells, _ in forms:
        if radix * ncells >= 2**62:
            return None
        code += cells.astype(np.int64) * radix
        radix *= ncells
    uniq, joint = np.unique(code, return_inverse=True)
    return (joint.reshape(-1), uniq) if few_cells(len(uniq), len(code)) else None


def resampled_scores(samples: Sequence[Sample], resamples: int, rng: np.random.Generator,
                     pool: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """((len(samples), resamples) scores, the way) on the same resampled examples for every sample. POOL: draw
    len(pool) examples from these indices only (a half of the test set) instead of n from all."""
    n = samples[0].n
    if any(s.n != n for s in samples):
        raise ValueError("samples scored on different numbers of examples cannot be paired")
    forms = [_cell_form(s) for s in samples]
    joint = _joint_cells(forms) if pool is None and all(f is not None for f in forms) else None
    if joint is not None:
        cell, uniq = joint
        counts = rng.multinomial(n, np.bincount(cell, minlength=len(uniq)) / n, size=resamples).astype(np.float64)
        out = np.empty((len(samples), resamples))
        for s, (cells, ncells, stat) in enumerate(forms):
            first = np.zeros(len(uniq), dtype=np.int64)  # each joint cell's cell in sample s
            first[cell] = cells
            marginal = np.zeros((len(uniq), ncells))
            marginal[np.arange(len(uniq)), first] = 1.0
            out[s] = stat(counts @ marginal)
        return out, "cells"
    out = np.empty((len(samples), resamples))
    step = _chunk_rows(max(n, len(pool) if pool is not None else n))
    stacked = stack_means(samples)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        out[:, start:start + rows] = weights_scores(samples, index_weights(rng, n, rows, pool), stacked).T
    return out, "indices"


def stack_means(samples: Sequence[Sample]) -> np.ndarray | None:
    """The per-example values of the mean samples among SAMPLES as one (n, k) matrix (None: there are none)."""
    means = [s.values for s in samples if isinstance(s, MeanSample)]
    return np.stack(means, axis=1) if means else None


def weights_scores(samples: Sequence[Sample], w: np.ndarray, stacked: np.ndarray | None = None) -> np.ndarray:
    """(rows, len(samples)) scores of every sample on each row of multiplicities W (rows, n); the mean samples
    in one matrix product (STACKED: their stack_means, when the caller made it once)."""
    out = np.empty((len(w), len(samples)))
    means = [i for i, s in enumerate(samples) if isinstance(s, MeanSample)]
    if means:
        stacked = stack_means(samples) if stacked is None else stacked
        avg = (w @ stacked) / w.sum(axis=1)[:, None]
        for j, i in enumerate(means):
            out[:, i] = samples[i].finish(avg[:, j])
    for i, s in enumerate(samples):
        if not isinstance(s, MeanSample):
            out[:, i] = s.on_weights(w)
    return out


def common_draw_scores(sample: Sample, resamples: int, seed) -> np.ndarray:
    """The sample's score on RESAMPLES index resamples drawn from SEED and its number of examples alone (never
    from its values, unlike the cells and strata ways): two submissions scored on the same examples and stored
    apart are paired by construction, so comparing their rows is a paired bootstrap (harness.scoring.board_ties)."""
    rng, n = rng_of(seed), sample.n
    out = np.empty(resamples)
    step = _chunk_rows(n)
    cells = isinstance(sample, CellSample) and sample.ncells * step < 2**31
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        if cells:  # the drawn examples' cells counted straight from the indices: no weights matrix
            idx = rng.integers(0, n, size=(rows, n), dtype=np.int32 if n < 2**31 else np.int64)
            flat = sample.cell[idx] + (np.arange(rows, dtype=np.int64) * sample.ncells)[:, None]
            counts = np.bincount(flat.ravel(), minlength=rows * sample.ncells).reshape(rows, sample.ncells)
            out[start:start + rows] = sample.stat(counts.astype(np.float64))
        else:
            out[start:start + rows] = sample.on_weights(index_weights(rng, n, rows))
    return out
