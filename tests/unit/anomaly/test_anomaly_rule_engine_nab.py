"""The daemon's anomaly rule runs the bench's code: same detections at the same timestamps.

A NAB series goes through ``gateway.rules.RuleEngine`` with a default ``anomaly`` rule, one
reading at a time as a device would send it; the bench scores the same series in one batch
(``bench.nab.run_detector``). Every reading the bench counts as a detection (score at or above
the rule's default threshold) must be an active sensor-anomaly signal at that reading's time with
that score, and the engine must signal nothing else as active. Skipped when ../shared/data is
absent (set GATEWAY_SHARED_DATA to the shared data folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench._nab_score import LabelledSeries, read_series_csv
from bench.nab import DETECTORS, run_detector
from drivers.base import Reading
from edge_config.rules import AnomalyRule
from edge_core.signals import Category, Signal
from gateway.rules import RuleEngine

_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "data"
NAB = Path(os.environ.get("GATEWAY_SHARED_DATA", str(_DEFAULT))) / "nab"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(
        not (NAB / "data").is_dir(),
        reason=f"NAB data not found at {NAB} (set GATEWAY_SHARED_DATA to the shared data folder)",
    ),
]

# A regular series with a labelled jump, and an irregular one with gaps of up to 3.5 days.
SERIES = ["artificialWithAnomaly/art_daily_jumpsup.csv", "realTraffic/speed_6005.csv"]


@pytest.mark.parametrize("name", SERIES)
def test_rule_engine_detects_what_the_bench_detects(name: str) -> None:
    stamps, values = read_series_csv(NAB / "data" / name)
    times = stamps.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    rule = AnomalyRule(kind="anomaly", id="nab", point="value")
    assert rule.detector == DETECTORS["ensemble"]  # the rule's default detector is the bench's

    series = LabelledSeries(name=name, timestamps=stamps, values=values, windows=())
    (scores,), _ = run_detector(DETECTORS["ensemble"], [series], repeats=1)
    detected = np.flatnonzero(scores >= rule.threshold)
    assert len(detected) > 0, "the series should give the bench at least one detection"

    signals: list[Signal] = []
    engine = RuleEngine([rule], ["nab-device"], signals.append, now=float(times[0]))
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        engine.ingest(Reading("nab-device", "value", v, t), now=t)

    active = [s for s in signals if s.active]
    assert all(s.category is Category.SENSOR_ANOMALY for s in signals)
    # Readings are at least a minute apart here, more than the engine's 1 s repeat limit, so every
    # detection is a signal of its own.
    assert [s.time for s in active] == times[detected].tolist()
    assert [s.score for s in active] == scores[detected].tolist()
