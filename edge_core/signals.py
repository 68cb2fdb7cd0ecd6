"""The one small interface every detector uses to tell the gateway that a condition holds or ended.

Rules over readings, the vision stage, sensor-anomaly detectors and camera events all speak in
:class:`Signal` and hand it to a :class:`SignalSink`; the gateway's incident manager turns signals
into incidents with a life (opened, updated, resolved), so no detector has to know about
deduplication, cooldowns, platform feedback or the outbox.

Evidence made after a signal (a snapshot fetched, a sensor window complete) reaches its incident
one way only: ``sink(signal.with_evidence(evidence))``, stored through an :class:`EvidenceSink`.
"""

from __future__ import annotations

import dataclasses
import enum
import time as _time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["GBT28181_ALARM", "Category", "Evidence", "EvidenceSink", "Severity", "Signal", "SignalSink"]


class Category(enum.StrEnum):
    """What kind of problem an incident reports."""

    INTRUSION = "intrusion"
    MOTION_IN_ZONE = "motion-in-zone"
    CAMERA_TAMPER = "camera-tamper"
    CAMERA_OFFLINE = "camera-offline"
    SENSOR_ANOMALY = "sensor-anomaly"
    THRESHOLD_BREACH = "threshold-breach"
    RATE_OF_CHANGE = "rate-of-change"
    STUCK_VALUE = "stuck-value"
    DEVICE_OFFLINE = "device-offline"
    DEVICE_ALARM = "device-alarm"
    GATEWAY_FAULT = "gateway-fault"


# GB/T 28181-2016 alarm notification: (alarm method, alarm type). Method 2 is a device alarm
# (type 1 video loss, 2 tamper), method 5 a video alarm (type 2 motion detection, 6 intrusion,
# 11 video anomaly), method 6 a device fault, method 7 "other". Sensor incidents have no video
# type, so they travel as "other" until the platform names a code for them.
GBT28181_ALARM: dict[Category, tuple[int, int | None]] = {
    Category.INTRUSION: (5, 6),
    Category.MOTION_IN_ZONE: (5, 2),
    Category.CAMERA_TAMPER: (2, 2),
    Category.CAMERA_OFFLINE: (2, 1),
    Category.SENSOR_ANOMALY: (7, None),
    Category.THRESHOLD_BREACH: (7, None),
    Category.RATE_OF_CHANGE: (7, None),
    Category.STUCK_VALUE: (6, None),
    Category.DEVICE_OFFLINE: (6, None),
    Category.DEVICE_ALARM: (2, None),
    Category.GATEWAY_FAULT: (6, None),
}


class Severity(enum.IntEnum):
    """Ordered severities; the outbox drops the lowest first when its budget is full."""

    INFO = 0
    MINOR = 1
    MAJOR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Evidence:
    """What backs an incident: a JPEG snapshot with boxes drawn, or a window of sensor readings.

    ``ref`` is the evidence store's id (served at ``/api/v1/evidence/{ref}``). ``preview`` is the
    id of a PNG rendering for people, when the evidence itself is data (a sensor window's plot).
    """

    ref: str
    media_type: str
    description: str = ""
    preview: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """A detector's statement, at ``time``, that a condition on ``device`` holds (active) or ended.

    One (device, point, rule) triple is one dedup key: repeated active signals update the same
    incident. ``zone`` (cameras) or ``point`` (sensors) narrows the place; ``score`` and ``value``
    say how strongly and at what reading; ``threshold`` what it was compared with.
    """

    device: str
    rule: str
    active: bool
    time: float
    category: Category
    severity: Severity
    point: str | None = None
    zone: str | None = None
    summary: str = ""
    detector: str = "rule"
    score: float | None = None
    value: float | None = None
    threshold: float | None = None
    department: str | None = None
    evidence: Evidence | None = None
    details: dict[str, str | float | int | bool] = field(default_factory=dict)
    evidence_only: bool = False
    """True for a follow-up that only brings evidence for the key's incident (it says nothing
    about whether the condition still holds)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """The dedup key: one open incident at most per key."""
        return (self.device, self.point or self.zone or "", self.rule)

    def with_evidence(self, evidence: Evidence, when: float | None = None) -> Signal:
        """The follow-up that links ``evidence`` to this signal's incident (and opens nothing)."""
        return dataclasses.replace(
            self, time=_time.time() if when is None else when, evidence=evidence, evidence_only=True
        )


class SignalSink(Protocol):
    """Where detectors send signals: the gateway's incident path (on the event loop)."""

    def __call__(self, signal: Signal, /) -> None: ...


class EvidenceSink(Protocol):
    """Where evidence files go (the gateway's evidence store); blocking file I/O."""

    def put(self, data: bytes, media_type: str = "image/jpeg", description: str = "") -> Evidence: ...
