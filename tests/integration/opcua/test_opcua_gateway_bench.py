"""Smoke test of bench.opcua_gateway: a tiny run through the real daemon yields readings and
committed threshold events, each breach matched to the commit of the event it opened. No timing
is asserted."""

from __future__ import annotations

import math

from bench.opcua_gateway import BREACH_EVERY, run


async def test_tiny_run_evaluates_readings_and_commits_events() -> None:
    rows = await run(points=5, rates=[500.0], seconds=1.0, warmup=0.0, publish_ms=50.0, settle_s=1.0, max_phase=False)
    assert [r.label for r in rows] == ["500/s"]
    paced = rows[0]
    assert paced.written > 0
    assert paced.readings == paced.written  # nothing lost at a gentle rate on 127.0.0.1
    # 1 write in BREACH_EVERY opens an incident and the next resolves it; phase edges cut a
    # breach cycle per point at most at each end.
    expected = 2 * paced.readings / BREACH_EVERY
    assert abs(paced.threshold_events - expected) <= 2 * 5 + 1
    assert math.isfinite(paced.p50_ms)  # opened events were matched to their commits
