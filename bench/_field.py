"""A seeded generator of township-like sensor series with injected, labelled anomalies.

NAB's series are mostly regular and complete; the field's are not. Every series here is 14 days of
one sensor with the field's habits, and a few injected anomalies whose windows are labelled as NAB
labels them (a window of 10% of the series' rows, shared among its anomalies, centred on each
anomaly's start). The series come out in NAB's layout (``field/<kind>_<n>.csv``) as
:class:`bench._nab_score.LabelledSeries`, so the same scorer scores them.

Habits (none labelled; a detector that fires on them pays false positives):

* sampling: a nominal interval of 1, 5 or 15 minutes, each interval jittered by up to +-30%;
  a few dropouts of 1 to 6 hours (and, on some series, one of a day): gaps are gaps in time, the
  series simply has no rows there;
* a daily cycle (a sine with a random phase, or a working-hours plateau) and a slow drift;
* noise: Gaussian, or Student-t with 3 degrees of freedom (occasional large readings);
* quantisation of the reading (0.1, 0.5 or 1 unit) on some series;
* a stuck period: the sensor repeats its last reading for 3 to 12 hours, then resumes (the
  ``stuck`` rule's job; for the anomaly detector it must not become a storm of alarms).

Kinds: ``level`` (temperature-like: cycle plus noise), ``load`` (working-hours plateau, spiky),
``sparse`` (a counter that is 0 most of the time, with Poisson bursts), ``flat`` (a set-point
holding still with rare small corrections) and ``walk`` (a slowly wandering level).

Injected anomalies (labelled): ``spike`` (3 readings far out), ``shift`` (a lasting level step,
such as a re-mounted sensor), ``noise`` (the noise grows fivefold for 2 hours), ``cycle`` (the
daily cycle vanishes for a day) and ``drift`` (a ramp of 4 spreads over 6 hours that stays).
Sizes are in units of the series' own noise (or cycle) so each is plainly visible to a person
looking at the plot, and none falls inside the first 15% of rows (NAB's probation) or a gap.

``stuck_spans`` gives, per series, the row ranges of its stuck periods so a bench can count the
alarms raised there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench._nab_score import LabelledSeries

__all__ = ["FIELD_KINDS", "FieldSeries", "field_corpus"]

F64 = npt.NDArray[np.float64]

FIELD_KINDS = ("level", "load", "sparse", "flat", "walk")
ANOMALY_KINDS = ("spike", "shift", "noise", "cycle", "drift")
DAYS = 14
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class FieldSeries:
    """One generated series, its labels, and where its sensor was stuck (row ranges, end excl.)."""

    series: LabelledSeries
    stuck_spans: tuple[tuple[int, int], ...]
    anomalies: tuple[str, ...]


def _times(rng: np.random.Generator, step: float) -> F64:
    n = int(DAYS * DAY / step)
    dt = step * (1.0 + 0.3 * rng.uniform(-1.0, 1.0, size=n))
    t = T0 + np.cumsum(dt)
    t = t[t < T0 + DAYS * DAY]
    keep = np.ones(len(t), dtype=bool)
    gaps = [(rng.uniform(1.0, 6.0) * 3600.0) for _ in range(int(rng.integers(2, 5)))]
    if rng.random() < 0.3:
        gaps.append(DAY)
    for length in gaps:
        start = T0 + rng.uniform(0.2, 0.95) * DAYS * DAY
        keep &= ~((t >= start) & (t < start + length))
    return np.round(t[keep])  # whole seconds, as most devices stamp


def _base(rng: np.random.Generator, kind: str, t: F64) -> tuple[F64, F64, float]:
    """Values without anomalies, the daily-cycle component, and the noise scale."""
    n = len(t)
    hours = ((t - T0) % DAY) / 3600.0
    phase = rng.uniform(0.0, 24.0)
    noise = rng.standard_t(3, size=n) if rng.random() < 0.5 else rng.normal(size=n)
    if kind == "level":
        amp, sd = rng.uniform(3.0, 8.0), rng.uniform(0.2, 0.6)
        cycle = amp * np.sin(2.0 * np.pi * (hours - phase) / 24.0)
        drift = rng.normal(0.0, 0.5) * (t - T0) / (DAYS * DAY)
        return 20.0 + cycle + drift + sd * noise, cycle, sd
    if kind == "load":
        amp, sd = rng.uniform(20.0, 50.0), rng.uniform(2.0, 5.0)
        start = rng.uniform(6.0, 9.0)
        cycle = amp / (1.0 + np.exp(-3.0 * (hours - start))) / (1.0 + np.exp(3.0 * (hours - start - 10.0)))
        return 10.0 + cycle + sd * np.abs(noise), cycle, sd
    if kind == "sparse":
        rate = rng.uniform(0.02, 0.08) * (1.0 + np.sin(2.0 * np.pi * (hours - phase) / 24.0))
        counts = rng.poisson(rate * 3.0).astype(np.float64)
        return counts, rate * 3.0, 1.0
    if kind == "flat":
        sd = rng.uniform(0.05, 0.2)
        corrections = np.cumsum((rng.random(n) < 0.002) * rng.normal(0.0, sd, size=n))
        return 50.0 + corrections, np.zeros(n), sd
    sd = rng.uniform(0.1, 0.5)  # walk
    level = np.cumsum(rng.normal(0.0, sd * 0.2, size=n))
    return 100.0 + level + sd * noise, np.zeros(n), sd


def _inject(rng: np.random.Generator, kind: str, values: F64, cycle: F64, sd: float, i: int, t: F64) -> F64:
    out = values.copy()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "spike":
        size = max(8.0 * sd, 8.0 * float(np.std(np.diff(values))))
        if values[i] - size < 0.0 <= float(np.min(values)):
            sign = 1.0  # a counter or a load cannot dip below 0: spike upwards
        out[i : i + 3] += sign * size
    elif kind == "shift":
        out[i:] += sign * max(6.0 * sd, 0.5 * float(np.ptp(cycle)))
    elif kind == "noise":
        end = int(np.searchsorted(t, t[i] + 2 * 3600.0))
        out[i:end] += 4.0 * sd * rng.normal(size=end - i)
    elif kind == "cycle":
        end = int(np.searchsorted(t, t[i] + DAY))
        out[i:end] -= cycle[i:end] - float(np.mean(cycle))
    else:  # drift
        ramp = np.clip((t - t[i]) / (6 * 3600.0), 0.0, 1.0)
        out[i:] += sign * 4.0 * max(sd, 0.1 * float(np.ptp(cycle))) * ramp[i:]
    if np.all(values >= 0.0):
        np.maximum(out, 0.0, out=out)  # a counter or a load stays non-negative
    return out


def _one(rng: np.random.Generator, kind: str, index: int) -> FieldSeries:
    step = float(rng.choice([60.0, 300.0, 900.0]))
    t = _times(rng, step)
    values, cycle, sd = _base(rng, kind, t)
    n = len(t)
    probation = int(min(np.floor(0.15 * n), 750))
    # Anomalies: 1 to 3, never in probation, spread apart, not right after a gap.
    count = int(rng.integers(1, 4))
    kinds = [str(k) for k in rng.choice(ANOMALY_KINDS, size=count, replace=False)]
    if kind in ("sparse", "flat", "walk"):  # no daily cycle to lose there
        kinds = ["spike" if k == "cycle" else k for k in kinds]
    slots = np.sort(rng.choice(np.arange(count * 4), size=count, replace=False))
    span = n - probation - n // 10
    starts = [probation + n // 20 + int(s * span / (count * 4)) for s in slots]
    big_gap = np.diff(t, prepend=t[0]) > 3 * step
    starts = [s + int(np.argmax(~big_gap[s:])) for s in starts]
    for k, s in zip(kinds, starts, strict=True):
        values = _inject(rng, k, values, cycle, sd, s, t)
    # One stuck period, away from the anomalies.
    stuck: list[tuple[int, int]] = []
    length = rng.uniform(3.0, 12.0) * 3600.0
    for _ in range(20):
        a = int(rng.integers(probation, n - 1))
        b = int(np.searchsorted(t, t[a] + length))
        if all(abs(a - s) > n // 10 and abs(b - s) > n // 10 for s in starts) and b < n:
            values[a:b] = values[a]
            stuck.append((a, b))
            break
    quantum = float(rng.choice([0.0, 0.1, 0.5, 1.0])) if kind in ("level", "load", "walk") else 0.0
    if quantum > 0.0:
        values = np.round(values / quantum) * quantum
    width = max(1, int(0.1 * n / count))
    stamps = (t * 1e6).astype(np.int64).astype("datetime64[us]")
    windows = []
    for s in sorted(starts):
        lo, hi = max(0, s - width // 2), min(n - 1, s + width // 2)
        windows.append((stamps[lo], stamps[hi]))
    # NAB merges overlapping windows; the anomalies are spread so that they do not overlap.
    series = LabelledSeries(
        name=f"field/{kind}_{index:02d}.csv",
        timestamps=stamps,
        values=values.astype(np.float64),
        windows=tuple(windows),
    )
    return FieldSeries(series=series, stuck_spans=tuple(stuck), anomalies=tuple(kinds))


def field_corpus(seed: int = 14, per_kind: int = 4) -> list[FieldSeries]:
    """``per_kind`` series of every kind in FIELD_KINDS; the same seed gives the same corpus."""
    rng = np.random.default_rng(seed)
    return [_one(rng, kind, i) for kind in FIELD_KINDS for i in range(per_kind)]
