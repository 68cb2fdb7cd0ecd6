"""The ensemble's members: one detector per fast-mean span, the spans set by short_span."""

from __future__ import annotations

from anomaly import make_detector
from edge_config.anomaly import AnomalySettings, EnsembleSettings


def test_fast_spans_follow_short_span() -> None:
    # 1 + lag for lags 0.5, 1, 2, ... under the short average's lag (short_span - 1); at least one
    # member, at most MAX_MEMBERS (4). The benchmark's lists (3, 5, 8) give two, three and four.
    table = {
        1.0: (1.5,),
        2.0: (1.5,),
        2.5: (1.5, 2.0),
        3.0: (1.5, 2.0),
        4.0: (1.5, 2.0, 3.0),
        5.0: (1.5, 2.0, 3.0),
        8.0: (1.5, 2.0, 3.0, 5.0),
        100.0: (1.5, 2.0, 3.0, 5.0),
    }
    for short, spans in table.items():
        assert EnsembleSettings(short_span=short).fast_spans == spans, short
    assert EnsembleSettings().fast_spans == (1.5, 2.0, 3.0)
    # One detector per span: the state grows with their number.
    sizes = [
        len(make_detector(AnomalySettings(ensemble=EnsembleSettings(short_span=s))).state()) for s in (3.0, 5.0, 8.0)
    ]
    assert sizes[0] < sizes[1] < sizes[2]
