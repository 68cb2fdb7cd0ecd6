"""One event, one alarm: what the ensemble's output looks like around an alarm."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly import make_detector


def test_only_a_reading_that_raises_an_alarm_scores() -> None:
    # Heavy-tailed noise raises alarms now and then. Every non-zero score opens an event and the
    # quiet hour after it is all zeros: readings under the alarm level score 0, so a threshold set
    # below the alarm's score cannot turn one event into a run of detections.
    rng = np.random.default_rng(11)
    n = 6000
    values = rng.standard_t(2.0, size=n)
    scores = make_detector().score_batch(values, 1.7e9 + 300.0 * np.arange(n, dtype=np.float64))
    alarms = np.flatnonzero(scores)
    assert 3 <= len(alarms) < 200
    for i in alarms:
        assert not scores[i + 1 : i + 12].any()  # 11 readings 5 minutes apart: inside the hour


@pytest.mark.parametrize(("interval", "judged"), [(300.0, False), (3600.0, True)])
def test_the_quiet_after_an_alarm_is_an_hour_by_the_clock_and_at_least_the_short_span(
    interval: float, judged: bool
) -> None:
    # Two spikes 10 readings apart: 50 minutes at 5-minute readings (inside the quiet hour), 10
    # hours at hourly readings (past the quiet, which there is short_span = 5 readings, not 1).
    rng = np.random.default_rng(5)
    n = 1000
    values = rng.normal(size=n)
    values[600] += 30.0
    values[610] += 30.0
    scores = make_detector().score_batch(values, 1.7e9 + interval * np.arange(n, dtype=np.float64))
    assert scores[600] > 0.2308
    assert not scores[601:606].any()  # within short_span readings of the alarm: quiet at any rate
    assert (scores[610] > 0.2308) == judged


def test_suppression_lasts_a_time_not_a_count() -> None:
    # An alarm keeps the output quiet for `quiet_minutes` by the clock (an hour): a reading that
    # comes after a gap longer than that is judged again.
    rng = np.random.default_rng(3)
    n = 1000
    values = rng.normal(size=n)
    values[600] += 30.0
    values[602] += 30.0
    dt = np.full(n, 60.0)
    dt[602] = 7200.0  # two hours later: well past the hour of quiet
    times = 1.7e9 + np.cumsum(dt)
    by_time = make_detector().score_batch(values, times)
    by_count = make_detector().score_batch(values, 1.7e9 + 60.0 * np.arange(n, dtype=np.float64))
    assert by_time[600] > 0.2308 and by_count[600] > 0.2308
    assert by_count[602] == 0.0  # two readings later: still suppressed when counting readings
    assert by_time[602] > 0.0
