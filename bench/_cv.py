"""Leave-one-category-out cross-validation of anomaly detectors under the NAB v1.1 scoring rules.

For each fold (one category held out) and each profile separately, a *chooser* looks at the other
categories only and returns a configuration's scores and a threshold (a published detector's
chooser only picks the threshold that maximises the summed raw score over those series, NAB's own
optimiser; our detector's also runs the search of bench/_search.py); the held-out category is
then scored with that configuration at that threshold.

The folds' raw scores are summed and normalised once over all windows of the corpus, as NAB
normalises a corpus: ``100 * (raw - null) / (perfect - null)``. Nothing about the held-out category
is used to choose anything for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bench._nab_score import PROFILES, CostMatrix, SeriesSweep, threshold_curve

__all__ = [
    "Chooser",
    "FoldChoice",
    "ProfileCV",
    "best_on",
    "cross_validate",
    "grid_chooser",
    "margin_interval",
    "raw_at_threshold",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FoldChoice:
    """What one fold chose on its training categories and what the held-out one scored with it."""

    held_out: str
    choice: str
    threshold: float
    train_raw: float
    raw: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class ProfileCV:
    """Pooled cross-validated score of one detector under one profile.

    ``series_raw[i]`` is series i's raw score in the fold that held it out (they sum to ``raw``).
    """

    profile: str
    normalised: float
    raw: float
    folds: tuple[FoldChoice, ...]
    series_raw: tuple[float, ...]


def raw_at_threshold(
    sweeps: Sequence[SeriesSweep], scores: Sequence[F64], cost: CostMatrix, threshold: float
) -> tuple[float, int, int, int]:
    """Raw NAB score (and tp, fp, fn) of ``scores >= threshold`` over the given series."""
    thresholds, raw, tp, fp, fn = threshold_curve(list(sweeps), list(scores), cost)
    # thresholds is descending (+inf first); detections at t are the points with score >= t, the
    # same set as at the smallest candidate that is still >= t.
    k = int(np.count_nonzero(thresholds >= threshold)) - 1
    return float(raw[k]), int(tp[k]), int(fp[k]), int(fn[k])


def _best(
    curve: tuple[F64, F64, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> tuple[float, float]:
    thresholds, raw = curve[0], curve[1]
    k = int(np.argmax(raw))  # first maximum = highest threshold (fewest detections)
    return float(thresholds[k]), float(raw[k])


class Chooser(Protocol):
    """Chooses, on the training series only, what a fold scores its held-out series with.

    Called with the training series' indices and the profile's cost matrix; returns the score
    arrays of every series under the chosen configuration (only the held-out ones are read), the
    threshold, the training raw score, and a label of what was chosen (for the report).
    """

    def __call__(self, train: Sequence[int], cost: CostMatrix) -> tuple[Sequence[F64], float, float, str]: ...


def grid_chooser(sweeps: Sequence[SeriesSweep], candidates: Sequence[Sequence[F64]]) -> Chooser:
    """Best candidate and threshold on the training series (ties: the earlier candidate)."""
    if not candidates:
        raise ValueError("no candidate to cross-validate")

    def choose(train: Sequence[int], cost: CostMatrix) -> tuple[Sequence[F64], float, float, str]:
        train_sweeps = [sweeps[i] for i in train]
        best_k, best_t, best_raw = 0, float("inf"), -float("inf")
        for k, scores in enumerate(candidates):
            t, r = _best(threshold_curve(train_sweeps, [scores[i] for i in train], cost))
            if r > best_raw + 1e-9:
                best_k, best_t, best_raw = k, t, r
        return candidates[best_k], best_t, best_raw, f"candidate {best_k}"

    return choose


def best_on(
    sweeps: Sequence[SeriesSweep], scores: Sequence[F64], idx: Sequence[int], cost: CostMatrix
) -> tuple[float, float]:
    """NAB's optimal threshold and its raw score over the series ``idx``."""
    return _best(threshold_curve([sweeps[i] for i in idx], [scores[i] for i in idx], cost))


def cross_validate(
    categories: Sequence[str],
    sweeps: Sequence[SeriesSweep],
    choose: Chooser,
    profiles: dict[str, CostMatrix] | None = None,
) -> dict[str, ProfileCV]:
    """Leave-one-category-out CV; ``categories[i]`` is the category of series i.

    A category without labelled windows is held out like any other (its raw score is then its
    false positives).
    """
    folds = sorted(set(categories))
    n_windows = sum(s.n_windows for s in sweeps)
    results: dict[str, ProfileCV] = {}
    for name, cost in (profiles or PROFILES).items():
        total = 0.0
        per_series = [0.0] * len(sweeps)
        chosen: list[FoldChoice] = []
        for held in folds:
            train = [i for i, c in enumerate(categories) if c != held]
            test = [i for i, c in enumerate(categories) if c == held]
            scores, threshold, train_raw, label = choose(train, cost)
            # NAB scores each series on its own, so the fold's figures are the sums of its series'.
            raw, tp, fp, fn = 0.0, 0, 0, 0
            for i in test:
                s_raw, s_tp, s_fp, s_fn = raw_at_threshold([sweeps[i]], [scores[i]], cost, threshold)
                per_series[i] = s_raw
                raw, tp, fp, fn = raw + s_raw, tp + s_tp, fp + s_fp, fn + s_fn
            total += raw
            chosen.append(FoldChoice(held, label, threshold, train_raw, raw, tp, fp, fn))
        null = -cost.fn * n_windows
        perfect = cost.tp * n_windows
        normalised = 100.0 * (total - null) / (perfect - null) if n_windows else 0.0
        results[name] = ProfileCV(name, normalised, total, tuple(chosen), tuple(per_series))
    return results


def margin_interval(
    ours: ProfileCV,
    theirs: ProfileCV,
    categories: Sequence[str],
    sweeps: Sequence[SeriesSweep],
    cost: CostMatrix,
    *,
    resamples: int = 2000,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The CV margin ``ours - theirs`` (normalised points) and its paired bootstrap interval.

    Each resample draws, within every category, as many series as it has, with replacement, and
    scores both detectors on the same draw, each series at the threshold and configuration its
    fold chose (the choices are held fixed: this is the noise of which series the corpus happens
    to hold, not of the search). Returns (margin, low, high) for the central ``level`` interval.
    """
    diff = np.asarray(ours.series_raw) - np.asarray(theirs.series_raw)
    windows = np.array([sw.n_windows for sw in sweeps], dtype=np.float64)
    rng = np.random.default_rng(seed)
    d_sum = np.zeros(resamples)
    w_sum = np.zeros(resamples)
    for category in sorted(set(categories)):
        members = np.flatnonzero(np.asarray(categories) == category)
        draw = members[rng.integers(0, len(members), size=(resamples, len(members)))]
        d_sum += diff[draw].sum(axis=1)
        w_sum += windows[draw].sum(axis=1)
    scale = 100.0 / (cost.tp + cost.fn)
    margins = scale * d_sum[w_sum > 0] / w_sum[w_sum > 0]
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(margins, [tail, 100.0 - tail])
    return ours.normalised - theirs.normalised, float(low), float(high)
