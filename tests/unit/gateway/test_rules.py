"""RuleEngine: threshold (hysteresis, for_s), rate of change, stuck value, silence, and live reload."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.base import Reading
from edge_config.rules import RateRule, SilenceRule, StuckRule, ThresholdRule
from edge_core.signals import Category, Severity, Signal
from gateway.rules import RuleEngine

T0 = 1_800_000_000.0


class Engine:
    """A RuleEngine with its emitted signals collected."""

    def __init__(self, rules: list[Any], devices: tuple[str, ...] = ("pump-1",), now: float = T0) -> None:
        self.signals: list[Signal] = []
        self.engine = RuleEngine(rules, devices, self.signals.append, now)

    def feed(
        self,
        value: float,
        t: float,
        *,
        device: str = "pump-1",
        point: str = "level",
        unit: str | None = "m",
        now: float | None = None,
    ) -> list[Signal]:
        n = len(self.signals)
        self.engine.ingest(Reading(device, point, value, t, unit), T0 + t if now is None else now)
        return self.signals[n:]

    def series(self, points: list[tuple[float, float]], **kw: Any) -> list[Signal]:
        out: list[Signal] = []
        for t, v in points:
            out += self.feed(v, t, **kw)
        return out


def above(**kw: Any) -> ThresholdRule:
    return ThresholdRule(
        kind="threshold", id=kw.pop("id", "level-high"), point="level", above=kw.pop("above", 5.0), **kw
    )


# -- threshold ---------------------------------------------------------------------------------


def test_threshold_opens_on_breach_signals_while_active_and_clears_with_hysteresis() -> None:
    e = Engine([above(hysteresis=0.5, severity="critical", department="water-bureau")])
    assert e.feed(4.9, 0) == []
    assert e.feed(5.0, 1) == []  # at the limit is not above it
    (s1,) = e.feed(5.2, 2)
    assert s1.active and s1.category is Category.THRESHOLD_BREACH and s1.severity is Severity.CRITICAL
    assert (s1.device, s1.point, s1.rule) == ("pump-1", "level", "level-high")
    assert s1.value == 5.2 and s1.threshold == 5.0 and s1.time == 2 and s1.department == "water-bureau"
    assert s1.summary == "level 5.2 m above 5"
    assert s1.detector == "threshold"  # the rule's kind, as the incident's detector name
    # Back under the limit but inside the hysteresis band: still active (the manager rate-limits).
    (s2,) = e.feed(4.8, 3)
    assert s2.active
    (s3,) = e.feed(4.5, 4)  # exactly limit - hysteresis clears
    assert not s3.active and s3.value == 4.5
    assert e.feed(4.0, 5) == []  # the end is said once


def test_threshold_below() -> None:
    e = Engine([ThresholdRule(kind="threshold", id="low", point="level", below=1.0, hysteresis=0.2)])
    assert e.series([(0, 1.0), (1, 1.5)]) == []
    assert [s.active for s in e.series([(2, 0.9), (3, 1.1), (4, 1.2)])] == [True, True, False]


def test_threshold_needs_the_breach_to_last_for_s() -> None:
    e = Engine([above(for_s=10)])
    assert e.series([(0, 6), (5, 6), (9.9, 6)]) == []
    (s,) = e.feed(6, 10)
    assert s.active and s.time == 10
    e.feed(0, 11)
    # An interrupted breach starts counting again.
    assert e.series([(20, 6), (25, 4), (26, 6), (35, 6)]) == []
    assert [s.active for s in e.feed(6, 36)] == [True]


def test_rule_applies_only_to_its_point_and_matching_devices() -> None:
    e = Engine([above(devices=["water-*"])], devices=("water-1", "pump-1"))
    assert e.feed(9, 0, device="pump-1") == []
    assert e.feed(9, 0, device="water-1", point="flow") == []
    (s,) = e.feed(9, 1, device="water-1")
    assert s.device == "water-1"


def test_each_device_has_its_own_state() -> None:
    e = Engine([above()], devices=("a", "b"))
    assert [s.device for s in e.feed(9, 0, device="a")] == ["a"]
    assert e.feed(1, 1, device="b") == []
    assert [(s.device, s.active) for s in e.feed(1, 2, device="a")] == [("a", False)]


def test_non_finite_readings_are_ignored() -> None:
    e = Engine([above()])
    assert e.feed(float("nan"), 0) == []
    assert e.feed(float("inf"), 1) == []
    (s,) = e.feed(6, 2)
    assert s.active
    assert e.feed(float("nan"), 3) == []  # does not clear either


# -- rate of change ----------------------------------------------------------------------------


def test_rate_of_change_over_window() -> None:
    e = Engine([RateRule(kind="rate", id="level-rate", point="level", max_per_s=0.5, window_s=10)])
    # 0.1/s: calm.
    assert e.series([(t, 0.1 * t) for t in range(0, 20)]) == []
    # A jump of 20 in 1 s (window baseline is 10 s back: 20/10 = 2/s > 0.5).
    (s,) = e.feed(21.9, 20)
    assert s.active and s.category is Category.RATE_OF_CHANGE and s.threshold == 0.5
    assert s.score is not None and s.score > 0.5
    # Flat afterwards: the rate over the window stays high until the jump leaves the window.
    out = e.series([(t, 21.9) for t in range(21, 32)])
    actives = [x.active for x in out]
    assert actives[0] is True and actives[-1] is False
    assert actives.count(False) == 1 and actives.index(False) == len(actives) - 1
    assert e.feed(21.9, 32) == []


def test_rate_of_change_detects_falls_too() -> None:
    e = Engine([RateRule(kind="rate", id="level-rate", point="level", max_per_s=1.0, window_s=5)])
    assert e.feed(10, 0) == []
    assert e.feed(10, 0) == []  # same timestamp: no rate
    (s,) = e.feed(0, 2)
    assert s.active and s.summary.startswith("level changing -5")


# -- stuck value -------------------------------------------------------------------------------


def test_stuck_value_after_for_s_then_moving_again() -> None:
    e = Engine([StuckRule(kind="stuck", id="frozen", point="level", for_s=60, tolerance=0.01)])
    assert e.series([(t, 3.0 + (0.005 if t % 20 else 0)) for t in range(0, 60, 10)]) == []
    (s,) = e.feed(3.0, 60)
    assert s.active and s.category is Category.STUCK_VALUE and s.value == 3.0
    assert e.series([(70, 3.0), (80, 3.0)]) == []  # said once, not on every reading
    (s2,) = e.feed(3.5, 90)
    assert not s2.active
    assert e.feed(3.5, 100) == []


# -- silence -----------------------------------------------------------------------------------


def test_silence_via_tick_then_back_on_a_reading() -> None:
    e = Engine([SilenceRule(kind="silence", id="offline", for_s=120)], devices=("pump-1", "pump-2"))
    e.engine.tick(T0 + 119)
    assert e.signals == []
    e.feed(1.0, 0, device="pump-2", now=T0 + 100)  # pump-2 is alive
    e.engine.tick(T0 + 120)
    assert [(s.device, s.active, s.category) for s in e.signals] == [("pump-1", True, Category.DEVICE_OFFLINE)]
    assert e.signals[0].time == T0 + 120 and e.signals[0].point is None
    e.engine.tick(T0 + 200)  # still silent: said once
    assert len(e.signals) == 1
    e.engine.tick(T0 + 220)  # pump-2 silent since T0+100
    assert [(s.device, s.active) for s in e.signals[1:]] == [("pump-2", True)]
    back = e.feed(1.0, 0, now=T0 + 230)
    assert [(s.device, s.active, s.rule) for s in back] == [("pump-1", False, "offline")]
    e.engine.tick(T0 + 300)
    assert len(e.signals) == 3  # pump-1 seen at +230, not silent for 120 s yet


def test_silence_counts_any_reading_even_unparsable_values() -> None:
    e = Engine([SilenceRule(kind="silence", id="offline", for_s=10)])
    e.feed(float("nan"), 0, now=T0 + 9)
    e.engine.tick(T0 + 18)
    assert e.signals == []


# -- reload ------------------------------------------------------------------------------------


def test_reload_with_same_rules_keeps_an_active_condition() -> None:
    rules = [above(hysteresis=1.0)]
    e = Engine(rules)
    e.feed(6, 0)
    e.engine.reload([above(hysteresis=1.0)], T0 + 1)  # equal definition, new objects (a re-read file)
    assert [s.active for s in e.feed(4.5, 2)] == [True]  # inside hysteresis: still active
    assert [s.active for s in e.feed(3.9, 3)] == [False]


def test_reload_with_changed_definition_stays_active_until_a_reading_clears_it() -> None:
    e = Engine([above(above=5.0)])
    e.feed(6, 0)
    e.engine.reload([above(above=7.0)], T0 + 1)
    # 6 is not above 7, so the changed rule clears the incident instead of leaving it open forever.
    (s,) = e.feed(6, 2)
    assert not s.active and s.threshold == 7.0


def test_two_reloads_without_a_reading_keep_the_state() -> None:
    e = Engine([above()], devices=("a", "b"))
    e.feed(6, 0, device="a")
    e.engine.reload([above()], T0 + 1)
    e.feed(1, 1, device="b")  # another point is read in between; 'a' is not
    e.engine.reload([above()], T0 + 2)  # a second SIGHUP
    out = e.feed(1, 3, device="a")
    assert [(s.device, s.active) for s in out] == [("a", False)]


def test_reload_keeps_silence_state_and_removed_rules_stop() -> None:
    sil = SilenceRule(kind="silence", id="offline", for_s=60)
    e = Engine([sil, above()])
    e.engine.tick(T0 + 60)
    assert [s.active for s in e.signals] == [True]
    e.engine.reload([SilenceRule(kind="silence", id="offline", for_s=60)], T0 + 61)
    e.engine.tick(T0 + 200)
    assert len(e.signals) == 1  # still offline: not announced again
    out = e.feed(9, 0, now=T0 + 201)  # the threshold rule is gone; the device is back
    assert [(s.rule, s.active) for s in out] == [("offline", False)]


def test_reload_adds_new_rules() -> None:
    e = Engine([])
    assert e.feed(9, 0) == []
    e.engine.reload([above()], T0 + 1)
    assert [s.active for s in e.feed(9, 1)] == [True]


@pytest.mark.parametrize("n", [10_000])
def test_rate_window_memory_is_bounded(n: int) -> None:
    e = Engine([RateRule(kind="rate", id="r", point="level", max_per_s=1e9, window_s=86400)])
    for i in range(n):
        e.feed(float(i), i * 0.001)
    ev = e.engine._point_evals[("pump-1", "level")][0]
    assert len(ev.window) <= 1024  # type: ignore[attr-defined]


def test_reload_changing_a_stuck_rule_does_not_end_a_still_frozen_sensor() -> None:
    e = Engine([StuckRule(kind="stuck", id="frozen", point="level", for_s=60)])
    e.series([(0, 3.0), (60, 3.0)])
    assert [s.active for s in e.signals] == [True]
    # The technician lengthens for_s while the sensor is still frozen: no 'moving again'.
    e.engine.reload([StuckRule(kind="stuck", id="frozen", point="level", for_s=90)], T0 + 61)
    assert e.series([(70, 3.0), (80, 3.0), (200, 3.0)]) == []
    assert [s.active for s in e.feed(4.0, 210)] == [False]


def test_reload_changing_a_rate_rule_keeps_its_window() -> None:
    e = Engine([RateRule(kind="rate", id="r", point="level", max_per_s=1.0, window_s=10)])
    e.series([(0, 0.0), (1, 5.0)])
    assert [s.active for s in e.signals] == [True]
    e.engine.reload([RateRule(kind="rate", id="r", point="level", max_per_s=2.0, window_s=10)], T0 + 2)
    # Still rising 5/s against the new limit 2/s: still active, not cleared by an empty window.
    assert [s.active for s in e.feed(10.0, 2)] == [True]


def test_a_point_pattern_watches_each_matching_point_separately() -> None:
    rule = ThresholdRule(kind="threshold", id="any-level", point="level_*", above=5.0)
    e = Engine([rule])
    (a,) = e.feed(6.0, 0, point="level_a")
    (b,) = e.feed(7.0, 1, point="level_b")
    assert e.feed(9.0, 2, point="flow") == []  # not matched by the pattern
    # One state per point: each breach is its own signal key, and each clears on its own.
    assert (a.point, b.point) == ("level_a", "level_b") and a.key != b.key
    assert e.feed(7.5, 1.5, point="level_b") == []  # still active; repeats are rate-limited
    (cleared,) = e.feed(1.0, 3, point="level_a")
    assert not cleared.active and cleared.point == "level_a"
    assert e.feed(7.5, 4, point="level_b")[0].active  # level_b's breach goes on
