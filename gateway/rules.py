"""Rules over readings: threshold (with hysteresis and minimum duration), rate of change, stuck
value, silence, and streaming anomaly scores. Each rule instance keeps a little state per
(device, point) and emits a :class:`Signal` when its condition starts, at most once a second
while it holds, and once when it ends; the incident manager turns those into one incident with
rate-limited updates.
"""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from anomaly import PointDetector, make_detector
from drivers.base import Reading
from edge_config.rules import AnomalyRule, RateRule, Rule, SilenceRule, StuckRule, ThresholdRule
from edge_core.signals import Category, Severity, Signal, SignalSink

__all__ = ["AnomalyWindow", "RuleEngine"]

_SEVERITY = {"info": Severity.INFO, "minor": Severity.MINOR, "major": Severity.MAJOR, "critical": Severity.CRITICAL}

# A rate window keeps at most this many samples: memory stays bounded for points that publish
# far faster than their window needs (the window then shortens to the newest samples).
_RATE_MAX_SAMPLES = 1024

# While a condition holds, a rule repeats its signal at most this often (device time): enough to
# keep the incident's latest value fresh for its rate-limited updates, without building a signal
# for every one of thousands of readings a second.
_REPEAT_S = 1.0


class _Eval:
    """State of one rule on one (device, point)."""

    __slots__ = ("active", "device", "last_signal", "point", "rule", "severity")

    def __init__(self, rule: Rule, device: str, point: str | None) -> None:
        self.rule = rule
        self.device = device
        self.point = point
        self.severity = _SEVERITY[rule.severity]
        self.active = False
        self.last_signal = -1e18

    def repeats_too_soon(self, active: bool, t: float) -> bool:
        """True for a 'still active' signal that follows the previous one within _REPEAT_S."""
        return active and self.active and t - self.last_signal < _REPEAT_S

    def signal(self, active: bool, t: float, category: Category, summary: str, **kw: float | None) -> Signal:
        self.active = active
        self.last_signal = t
        return Signal(
            device=self.device,
            rule=self.rule.id,
            point=self.point,
            active=active,
            time=t,
            category=category,
            severity=self.severity,
            summary=summary,
            department=self.rule.department,
            detector=self.detector_name,
            **kw,  # type: ignore[arg-type]
        )

    @property
    def detector_name(self) -> str:
        """What the platform sees as the incident's detector: the rule's kind ('threshold', ...)."""
        return self.rule.kind

    def reading(self, r: Reading) -> Signal | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def carry_from(self, prev: _Eval) -> None:
        """Take over a previous instance's measurements when a reload changed the rule's settings,
        so the new definition judges them instead of starting blind."""
        if type(prev) is type(self):
            for name in type(self).__slots__:
                setattr(self, name, getattr(prev, name))
        self.active = prev.active


class _Threshold(_Eval):
    __slots__ = ("since",)
    rule: ThresholdRule

    def __init__(self, rule: ThresholdRule, device: str, point: str | None) -> None:
        super().__init__(rule, device, point)
        self.since: float | None = None

    def reading(self, r: Reading) -> Signal | None:
        rule, v = self.rule, r.value
        if rule.above is not None:
            limit, breach, clear, word = rule.above, v > rule.above, v <= rule.above - rule.hysteresis, "above"
        else:
            assert rule.below is not None
            limit, breach, clear, word = rule.below, v < rule.below, v >= rule.below + rule.hysteresis, "below"
        if self.active:
            active = not clear
        elif not breach:
            self.since = None
            return None
        else:
            if self.since is None:
                self.since = r.time
            if r.time - self.since < rule.for_s:
                return None
            active = True
        if not active:
            self.since = None
        elif self.repeats_too_soon(active, r.time):
            return None
        if not active:
            word = "back below" if rule.above is not None else "back above"
        summary = f"{self.point} {v:g}{' ' + r.unit if r.unit else ''} {word} {limit:g}"
        return self.signal(active, r.time, Category.THRESHOLD_BREACH, summary, value=v, threshold=limit)


class _Rate(_Eval):
    __slots__ = ("window",)
    rule: RateRule

    def __init__(self, rule: RateRule, device: str, point: str | None) -> None:
        super().__init__(rule, device, point)
        self.window: deque[tuple[float, float]] = deque(maxlen=_RATE_MAX_SAMPLES)

    def reading(self, r: Reading) -> Signal | None:
        w = self.window
        w.append((r.time, r.value))
        horizon = r.time - self.rule.window_s
        while len(w) > 2 and w[1][0] <= horizon:
            w.popleft()
        t0, v0 = w[0]
        dt = r.time - t0
        if dt <= 0:
            return None
        rate = (r.value - v0) / dt
        over = abs(rate) > self.rule.max_per_s
        if (over or self.active) and not self.repeats_too_soon(over, r.time):
            summary = f"{self.point} changing {rate:+.3g}/s (limit {self.rule.max_per_s:g}/s)"
            return self.signal(
                over,
                r.time,
                Category.RATE_OF_CHANGE,
                summary,
                value=r.value,
                score=abs(rate),
                threshold=self.rule.max_per_s,
            )
        return None


class _Stuck(_Eval):
    __slots__ = ("ref", "since")
    rule: StuckRule

    def __init__(self, rule: StuckRule, device: str, point: str | None) -> None:
        super().__init__(rule, device, point)
        self.ref = math.nan
        self.since = 0.0

    def reading(self, r: Reading) -> Signal | None:
        if not abs(r.value - self.ref) <= self.rule.tolerance:  # also true for the first (NaN ref)
            self.ref, self.since = r.value, r.time
            if self.active:
                return self.signal(False, r.time, Category.STUCK_VALUE, f"{self.point} moving again", value=r.value)
            return None
        if not self.active and r.time - self.since >= self.rule.for_s:
            summary = f"{self.point} stuck at {r.value:g} for {r.time - self.since:.0f} s"
            return self.signal(True, r.time, Category.STUCK_VALUE, summary, value=r.value)
        return None


class _Silence(_Eval):
    __slots__ = ("last_seen",)
    rule: SilenceRule

    def __init__(self, rule: SilenceRule, device: str, now: float) -> None:
        super().__init__(rule, device, None)
        self.last_seen = now

    def seen(self, now: float) -> Signal | None:
        self.last_seen = now
        if self.active:
            return self.signal(False, now, Category.DEVICE_OFFLINE, f"{self.device} sending again")
        return None

    def check(self, now: float) -> Signal | None:
        if not self.active and now - self.last_seen >= self.rule.for_s:
            return self.signal(
                True, now, Category.DEVICE_OFFLINE, f"{self.device} silent for {now - self.last_seen:.0f} s"
            )
        return None


@dataclass(frozen=True, slots=True)
class AnomalyWindow:
    """The readings around an anomaly's onset, handed out once enough came after it."""

    device: str
    point: str
    rule: str
    detector: str
    threshold: float
    onset: float
    readings: tuple[tuple[float, float, float], ...]  # (time, value, score)
    signal: Signal
    """The signal that opened the anomaly: ``signal.with_evidence(...)`` links the window to it."""


class _Anomaly(_Eval):
    __slots__ = ("detector", "onset", "opened", "post_left", "quiet_since", "window")
    rule: AnomalyRule

    def __init__(self, rule: AnomalyRule, device: str, point: str | None, state: bytes | None = None) -> None:
        super().__init__(rule, device, point)
        self.detector = _detector(rule, state)
        self.window: deque[tuple[float, float, float]] = deque(maxlen=rule.evidence_readings)
        self.quiet_since: float | None = None
        self.onset = 0.0
        self.opened: Signal | None = None
        self.post_left = 0

    def reading(self, r: Reading) -> Signal | None:
        rule = self.rule
        score = self.detector.update(r.value, r.time)
        self.window.append((r.time, r.value, score))
        if self.post_left > 0:
            self.post_left -= 1
        if score >= rule.threshold:
            self.quiet_since = None
            opening = not self.active
            if opening:
                self.onset = r.time
                self.post_left = max(1, rule.evidence_readings // 4)
            elif self.repeats_too_soon(True, r.time):
                return None
            summary = f"{self.point} {r.value:g}{' ' + r.unit if r.unit else ''} anomalous (score {score:.2f})"
            sig = self.signal(
                True, r.time, Category.SENSOR_ANOMALY, summary, value=r.value, score=score, threshold=rule.threshold
            )
            if opening:
                self.opened = sig
            return sig
        if self.active:
            if self.quiet_since is None:
                self.quiet_since = r.time
            if r.time - self.quiet_since >= rule.resolve_after_s:
                return self.signal(
                    False,
                    r.time,
                    Category.SENSOR_ANOMALY,
                    f"{self.point} back to normal",
                    value=r.value,
                    score=score,
                    threshold=rule.threshold,
                )
        return None

    @property
    def detector_name(self) -> str:
        # The algorithm, not 'anomaly': a platform comparing detectors needs to know which scored.
        return self.rule.detector.detector

    def evidence_due(self) -> AnomalyWindow | None:
        """The onset's window once a quarter of it lies after the onset (then never again)."""
        if self.post_left != 1 or self.opened is None:
            return None
        self.post_left = 0
        return AnomalyWindow(
            self.device,
            self.point or "",
            self.rule.id,
            self.rule.detector.detector,
            self.rule.threshold,
            self.onset,
            tuple(self.window),
            self.opened,
        )

    def carry_from(self, prev: _Eval) -> None:
        super().carry_from(prev)
        if isinstance(prev, _Anomaly) and prev.rule.detector != self.rule.detector:
            # Other detector settings shape other state: start that detector afresh.
            self.detector = _detector(self.rule, None)
            self.window = deque(prev.window, maxlen=self.rule.evidence_readings)


def _detector(rule: AnomalyRule, state: bytes | None) -> PointDetector:
    if state is not None:
        try:
            return PointDetector.restore(rule.detector, state)
        except ValueError:
            pass  # saved with other settings: relearn rather than refuse to start
    return make_detector(rule.detector)


_POINT_RULES: dict[type, type[_Eval]] = {ThresholdRule: _Threshold, RateRule: _Rate, StuckRule: _Stuck}


def anomaly_key(rule_id: str, device: str, point: str) -> str:
    return f"anomaly/{rule_id}/{device}/{point}"


class RuleEngine:
    """Evaluates every rule that applies to each reading; silence is checked on :meth:`tick`.

    Silence uses the gateway's clock (``now``); the other rules use the reading's own time, so a
    back-filled burst is judged on the device's timeline.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        devices: Iterable[str],
        emit: SignalSink,
        now: float,
        *,
        on_evidence: Callable[[AnomalyWindow], None] | None = None,
        saved_state: Callable[[str], bytes | None] = lambda _key: None,
    ) -> None:
        self._emit = emit
        self._on_evidence = on_evidence
        self._saved_state = saved_state
        self._devices = list(devices)
        self._rules: list[Rule] = []
        self._point_evals: dict[tuple[str, str], list[_Eval]] = {}
        self._silence: dict[str, list[_Silence]] = {}
        self._assumed: set[tuple[str, str, str | None]] = set()
        self.reload(rules, now)

    def assume_active(self, rule_id: str, device: str, point: str | None) -> None:
        """Start a rule in its active state, for an incident restored after a restart.

        Without this, the first reading after a restart would find every rule inactive: a
        condition that ended while the box was down would never resolve its incident, and one
        still going on would be judged as new.
        """
        self._assumed.add((rule_id, device, point))
        for s in self._silence.get(device, ()):
            if s.rule.id == rule_id:
                s.active = True
        for ev in self._point_evals.get((device, point or ""), ()):
            if ev.rule.id == rule_id:
                ev.active = True

    def reload(self, rules: Sequence[Rule], now: float) -> None:
        """Swap in a new rule set. State of rules whose definition is unchanged is kept, and a rule
        that was active stays active under a changed definition until a reading clears it, so open
        incidents are neither dropped nor duplicated."""
        # Point state not read since the previous reload still waits in _old_point_state: keep it.
        old = dict(getattr(self, "_old_point_state", {}))
        old.update({(e.rule.id, e.device, e.point): e for evals in self._point_evals.values() for e in evals})
        old.update({(e.rule.id, e.device, None): e for evals in self._silence.values() for e in evals})
        self._rules = list(rules)
        self._point_evals = {}
        self._silence = {}
        for rule in self._rules:
            if isinstance(rule, SilenceRule):
                for dev in self._matching(rule):
                    prev = old.get((rule.id, dev, None))
                    ev = _Silence(rule, dev, now)
                    if isinstance(prev, _Silence):
                        ev.last_seen, ev.active = prev.last_seen, prev.active
                    self._silence.setdefault(dev, []).append(ev)
        self._old_point_state = old

    def rule(self, rule_id: str) -> Rule | None:
        """The rule in force with this id (None: a detector's signal, not a [[rules]] entry)."""
        return next((r for r in self._rules if r.id == rule_id), None)

    def _matching(self, rule: Rule) -> list[str]:
        return [d for d in self._devices if any(fnmatch.fnmatchcase(d, p) for p in rule.devices)]

    def _evals_for(self, device: str, point: str) -> list[_Eval]:
        evals: list[_Eval] = []
        for rule in self._rules:
            if isinstance(rule, SilenceRule) or not fnmatch.fnmatchcase(point, rule.point):
                continue
            if not any(fnmatch.fnmatchcase(device, p) for p in rule.devices):
                continue
            prev = self._old_point_state.get((rule.id, device, point))
            if prev is not None and prev.rule == rule:
                evals.append(prev)
                continue
            ev: _Eval
            if isinstance(rule, AnomalyRule):
                ev = _Anomaly(
                    rule, device, point, None if prev else self._saved_state(anomaly_key(rule.id, device, point))
                )
            else:
                ev = _POINT_RULES[type(rule)](rule, device, point)
            if prev is not None:
                ev.carry_from(prev)
            elif (rule.id, device, point) in self._assumed:
                ev.active = True
            evals.append(ev)
        self._point_evals[(device, point)] = evals
        return evals

    def ingest(self, r: Reading, now: float) -> None:
        """Evaluate one reading (on the event loop; a few microseconds when no rule fires)."""
        silence = self._silence.get(r.device)
        if silence:
            for s in silence:
                if s.active:
                    sig = s.seen(now)
                    if sig is not None:
                        self._emit(sig)
                else:
                    s.last_seen = now
        evals = self._point_evals.get((r.device, r.point))
        if evals is None:
            evals = self._evals_for(r.device, r.point)
        if not math.isfinite(r.value):
            return
        for ev in evals:
            sig = ev.reading(r)
            if sig is not None:
                self._emit(sig)
            if isinstance(ev, _Anomaly) and self._on_evidence is not None:
                window = ev.evidence_due()
                if window is not None:
                    self._on_evidence(window)

    def anomaly_states(self) -> dict[str, bytes]:
        """Every anomaly detector's state, keyed for :func:`anomaly_key` (to save across restarts)."""
        return {
            anomaly_key(ev.rule.id, ev.device, ev.point or ""): ev.detector.state()
            for evals in self._point_evals.values()
            for ev in evals
            if isinstance(ev, _Anomaly)
        }

    def tick(self, now: float) -> None:
        """Periodic checks that no reading triggers (silence)."""
        for evals in self._silence.values():
            for s in evals:
                sig = s.check(now)
                if sig is not None:
                    self._emit(sig)
