"""The detectors on a few real NAB series (skipped when ../shared/data is absent).

The whole-corpus run is the benchmark (python -m bench.nab), not a test; these only check
behaviour on real data in well under a second each.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from anomaly import PointDetector, make_detector
from bench._nab_score import load_corpus, read_series_csv, sweep_series
from edge_config.anomaly import AnomalySettings

_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "data"
NAB = Path(os.environ.get("GATEWAY_SHARED_DATA", str(_DEFAULT))) / "nab"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(
        not (NAB / "labels" / "combined_windows.json").is_file(),
        reason=f"NAB data not found at {NAB} (set GATEWAY_SHARED_DATA to the shared data folder)",
    ),
]


def _seconds(stamps: np.ndarray) -> np.ndarray:
    return stamps.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6


def test_corpus_loads_with_every_window_on_a_row() -> None:
    corpus = load_corpus(NAB)
    assert len(corpus) == 41
    sweeps = [sweep_series(s.timestamps, s.windows) for s in corpus]
    assert sum(sw.n_windows for sw in sweeps) == 64


def test_ensemble_peaks_inside_the_labelled_jump() -> None:
    corpus = {s.name: s for s in load_corpus(NAB)}
    series = corpus["artificialWithAnomaly/art_daily_jumpsup.csv"]
    sweep = sweep_series(series.timestamps, series.windows)
    scores = make_detector().score_batch(series.values, _seconds(series.timestamps))
    scored = np.flatnonzero(sweep.window != -2)
    peak = scored[np.argmax(scores[scored])]
    assert sweep.window[peak] == 0


def test_live_restart_and_batch_agree_on_real_data() -> None:
    stamps, values = read_series_csv(NAB / "data" / "realTraffic" / "speed_7578.csv")
    times = _seconds(stamps)
    batch = make_detector().score_batch(values, times)
    live = make_detector()
    out = [live.update(v, t) for v, t in zip(values[:600], times[:600], strict=True)]
    live = PointDetector.restore(AnomalySettings(), live.state())  # a restart mid-stream
    out += [live.update(v, t) for v, t in zip(values[600:], times[600:], strict=True)]
    npt.assert_array_equal(np.array(out), batch)
