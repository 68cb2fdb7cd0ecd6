"""A NAB v1.1-compatible scorer, written for this project.

The rules follow the Numenta Anomaly Benchmark v1.1 (github.com/numenta/NAB, ``nab/sweeper.py``
and ``nab/runner.py``); only the rules are shared, not the code:

* Every series has zero or more labelled windows ``[start, end]`` (inclusive timestamps).
* The first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a series are probationary: ignored.
* A point is a detection when ``anomaly_score >= threshold``.
* Inside a window, a point scores ``scaled_sigmoid(-(right - i + 1) / width) / scaled_sigmoid(-1)``
  times the TP weight (``right`` is the index of the window's last row, ``width`` its row count);
  a window counts once, with its best (earliest) detection, or ``-fn_weight`` if none.
* Outside windows, a detection scores ``scaled_sigmoid(|i - prev_right| / (prev_width - 1))`` times
  the FP weight (between 0 and -fp_weight, so a detection just after a window costs little), or
  ``-fp_weight`` before the first window.
* ``scaled_sigmoid(y) = 2 / (1 + exp(5 y)) - 1``, and ``-1`` when ``y >= 3``.
* One threshold per detector and profile, chosen to maximise the raw score summed over the corpus.
* Normalised score ``100 * (raw - null) / (perfect - null)`` with ``null = -fn_weight * windows``
  (the score of a detector that never fires) and ``perfect = tp_weight * windows``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROFILES",
    "CostMatrix",
    "LabelledSeries",
    "ProfileResult",
    "SeriesSweep",
    "load_corpus",
    "read_series_csv",
    "scaled_sigmoid",
    "score_corpus",
    "sweep_series",
    "threshold_curve",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PROBATION_PERCENT = 0.15
# Window id of a point outside every window, and of a probationary point.
OUTSIDE = -1
PROBATION = -2


@dataclass(frozen=True)
class CostMatrix:
    """Weights of one NAB application profile."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True)
class LabelledSeries:
    """One data file: its relative path (``category/file.csv``), rows and labelled windows."""

    name: str
    timestamps: npt.NDArray[np.datetime64]
    values: F64
    windows: tuple[tuple[np.datetime64, np.datetime64], ...]


@dataclass(frozen=True)
class SeriesSweep:
    """Per-row scoring facts of one series, independent of the threshold and the detector.

    ``window[i]`` is the window index (0..k-1) for a row inside a window, ``OUTSIDE`` or
    ``PROBATION``; ``tp_score[i]`` is the unweighted value of a detection at row i, that is
    ``scaled_sigmoid(position) / scaled_sigmoid(-1)`` in a window and ``scaled_sigmoid(position)``
    (a value in [-1, 0]) outside one, to be multiplied by the profile's TP or FP weight.
    """

    window: I64
    unweighted: F64
    n_windows: int


@dataclass(frozen=True)
class ProfileResult:
    """The corpus score of one detector under one profile."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    tp: int
    fp: int
    fn: int


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: about 0.987 at -1 (window start), 0 at 0, -1 from 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(n_rows: int) -> int:
    """Rows of a series that are never scored (NAB: 15% of the rows, at most 750)."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


def sweep_series(
    timestamps: npt.NDArray[np.datetime64],
    windows: tuple[tuple[np.datetime64, np.datetime64], ...],
) -> SeriesSweep:
    """Work out, for every row, which window it is in and what a detection there is worth.

    A window opens at the row whose timestamp equals its start and closes after the row whose
    timestamp equals its end, exactly as NAB does; a window whose limits are not row timestamps
    is an error here (NAB would silently skip it).
    """
    n = len(timestamps)
    index = {ts: i for i, ts in enumerate(timestamps.tolist())}
    limits: list[tuple[int, int]] = []
    for start, end in windows:
        try:
            limits.append((index[start.tolist()], index[end.tolist()]))
        except KeyError as exc:
            raise ValueError(f"window {start}..{end}: limit {exc} is not a row timestamp") from None
    limits.sort()
    window = np.full(n, OUTSIDE, dtype=np.int64)
    unweighted = np.empty(n, dtype=np.float64)
    max_tp = scaled_sigmoid(-1.0)
    prev_right = -1
    prev_width = 0.0
    k = 0
    i = 0
    while i < n:
        if k < len(limits) and i == limits[k][0]:
            left, right = limits[k]
            width = float(right - left + 1)
            for j in range(left, right + 1):
                window[j] = k
                unweighted[j] = scaled_sigmoid(-(right - j + 1) / width) / max_tp
            prev_right, prev_width = right, width
            k += 1
            i = right + 1
            continue
        if prev_right < 0:
            unweighted[i] = -1.0
        else:
            # A one-row window makes this 0/0 in NAB (a crash); treat it as "far past".
            denom = prev_width - 1.0
            unweighted[i] = scaled_sigmoid(abs(prev_right - i) / denom) if denom > 0 else -1.0
        i += 1
    probation = probation_length(n)
    window[:probation] = PROBATION
    # As in NAB, a window lying wholly in the probationary period is not scored at all.
    skipped = sum(1 for _, right in limits if right < probation)
    window[window >= 0] -= skipped
    return SeriesSweep(window=window, unweighted=unweighted, n_windows=len(limits) - skipped)


def threshold_curve(sweeps: list[SeriesSweep], scores: list[F64], cost: CostMatrix) -> tuple[F64, F64, I64, I64, I64]:
    """Raw corpus score for every candidate threshold (each distinct score, plus 'never').

    Returns ``(thresholds, raw, tp, fp, fn)``; ``thresholds[0]`` is +inf (no detection at all).
    """
    parts_score: list[F64] = []
    parts_win: list[I64] = []
    parts_val: list[F64] = []
    offset = 0
    total_windows = 0
    for sweep, score in zip(sweeps, scores, strict=True):
        keep = sweep.window != PROBATION
        w = sweep.window[keep]
        parts_win.append(np.where(w >= 0, w + offset, OUTSIDE))
        parts_score.append(np.asarray(score, dtype=np.float64)[keep])
        parts_val.append(sweep.unweighted[keep])
        offset += sweep.n_windows
        total_windows += sweep.n_windows
    all_score = np.concatenate(parts_score) if parts_score else np.empty(0)
    all_win = np.concatenate(parts_win) if parts_win else np.empty(0, dtype=np.int64)
    all_val = np.concatenate(parts_val) if parts_val else np.empty(0)
    if np.isnan(all_score).any():
        raise ValueError("anomaly scores must not be NaN")
    order = np.argsort(-all_score, kind="stable")
    s_sorted = all_score[order]
    w_sorted = all_win[order]
    v_sorted = all_val[order]
    # Score change when each point (in descending score order) becomes a detection.
    delta = np.where(w_sorted < 0, v_sorted * cost.fp, 0.0)
    is_fp = (w_sorted < 0).astype(np.int64)
    new_tp = np.zeros(len(order), dtype=np.int64)
    # A window contributes max(-fn, best detection so far); track it per window.
    best = np.full(total_windows, -cost.fn)
    in_window = np.flatnonzero(w_sorted >= 0)
    for pos in in_window:
        win = w_sorted[pos]
        value = v_sorted[pos] * cost.tp
        if best[win] == -cost.fn:
            new_tp[pos] = 1
        if value > best[win]:
            delta[pos] = value - best[win]
            best[win] = value
    raw_after = -cost.fn * total_windows + np.cumsum(delta)
    tp_after = np.cumsum(new_tp)
    fp_after = np.cumsum(is_fp)
    # The score at threshold s counts every point with score >= s: take the last of each tie run.
    last_of_run = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    thresholds = np.concatenate(([np.inf], s_sorted[last_of_run]))
    raw = np.concatenate(([-cost.fn * total_windows], raw_after[last_of_run]))
    tp = np.concatenate(([0], tp_after[last_of_run]))
    fp = np.concatenate(([0], fp_after[last_of_run]))
    fn = total_windows - tp
    return thresholds, raw, tp, fp, fn


def score_corpus(
    sweeps: list[SeriesSweep], scores: list[F64], profiles: dict[str, CostMatrix] | None = None
) -> dict[str, ProfileResult]:
    """Score one detector's output over a corpus, one optimal threshold per profile.

    Ties between thresholds go to the highest one (fewest detections). ``normalised`` is 100 for
    a perfect detector and 0 for one that never fires.
    """
    results: dict[str, ProfileResult] = {}
    n_windows = sum(s.n_windows for s in sweeps)
    for name, cost in (profiles or PROFILES).items():
        thresholds, raw, tp, fp, fn = threshold_curve(sweeps, scores, cost)
        best = int(np.argmax(raw))
        null = -cost.fn * n_windows
        perfect = cost.tp * n_windows
        normalised = 100.0 * (raw[best] - null) / (perfect - null) if n_windows else 0.0
        results[name] = ProfileResult(
            profile=name,
            threshold=float(thresholds[best]),
            raw=float(raw[best]),
            normalised=float(normalised),
            tp=int(tp[best]),
            fp=int(fp[best]),
            fn=int(fn[best]),
        )
    return results


def _parse_ts(text: str) -> np.datetime64:
    return np.datetime64(text.strip().replace(" ", "T"), "us")


def read_series_csv(path: Path) -> tuple[npt.NDArray[np.datetime64], F64]:
    """Read a NAB data file (``timestamp,value`` with a header row)."""
    stamps: list[np.datetime64] = []
    values: list[float] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected a 'timestamp,value' header, got {header!r}")
        for row in reader:
            if not row:
                continue
            stamps.append(_parse_ts(row[0]))
            values.append(float(row[1]))
    return np.array(stamps, dtype="datetime64[us]"), np.array(values, dtype=np.float64)


def load_corpus(root: Path) -> list[LabelledSeries]:
    """Load every series of a NAB-layout folder (``data/<category>/*.csv``, ``labels/``).

    Windows come from ``labels/combined_windows.json``; a data file missing from it has none.
    """
    data_dir = root / "data"
    labels_path = root / "labels" / "combined_windows.json"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{root}: no data/ folder (expected NAB layout data/, labels/)")
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path}: missing (expected NAB layout data/, labels/)")
    labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text(encoding="utf-8"))
    corpus: list[LabelledSeries] = []
    for path in sorted(data_dir.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        stamps, values = read_series_csv(path)
        windows = tuple((_parse_ts(a), _parse_ts(b)) for a, b in labels.get(name, []))
        corpus.append(LabelledSeries(name=name, timestamps=stamps, values=values, windows=windows))
    return corpus
