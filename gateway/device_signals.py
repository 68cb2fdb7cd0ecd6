"""Signals about devices that come from their links rather than from their readings: a broker or
PLC link down for too long (device-offline for every device it carries), a PLC's own OPC-UA alarms
(device-alarm, one incident per condition), and the box's own outbox dropping events for lack of
room (gateway-fault)."""

from __future__ import annotations

import time

from drivers.base import DriverState
from drivers.opcua import OpcUaAlarm
from edge_core.signals import Category, Severity, Signal, SignalSink
from gateway.supervisor import SupervisorHealth

__all__ = ["HaltWatch", "LinkWatch", "OverflowWatch", "StorageWatch", "alarm_signal"]


class LinkWatch:
    """Raises device-offline for every device of a link that has been down ``offline_after_s``,
    and resolves it when the link connects again. Feed it the supervisors' state changes
    (``on_state``) and the gateway's tick (``check``)."""

    def __init__(self, offline_after_s: float, sink: SignalSink) -> None:
        self._offline_after_s = offline_after_s
        self._sink = sink
        self._devices: dict[str, list[str]] = {}
        self._down_since: dict[str, float] = {}
        self._offline: set[str] = set()
        self._last_error: dict[str, str | None] = {}

    def watch(self, link: str, devices: list[str]) -> None:
        """``devices`` go offline with ``link``."""
        self._devices[link] = devices

    def on_state(self, h: SupervisorHealth) -> None:
        if h.name not in self._devices:
            return
        self._last_error[h.name] = h.last_error
        if h.state in (DriverState.BACKOFF, DriverState.FAILED):
            self._down_since.setdefault(h.name, time.time())
        elif h.state is DriverState.CONNECTED:
            self._down_since.pop(h.name, None)
            if h.name in self._offline:
                self._offline.discard(h.name)
                self._signals(h.name, False, time.time(), f"{h.name} connected again")

    def check(self, now: float) -> None:
        for name, since in self._down_since.items():
            if name not in self._offline and now - since >= self._offline_after_s:
                self._offline.add(name)
                err = self._last_error.get(name)
                self._signals(name, True, now, f"{name} down for {now - since:.0f} s: {err or 'unknown'}")

    def _signals(self, link: str, active: bool, t: float, summary: str) -> None:
        for dev in self._devices[link]:
            self._sink(
                Signal(
                    device=dev,
                    rule="link-down",
                    active=active,
                    time=t,
                    category=Category.DEVICE_OFFLINE,
                    severity=Severity.MINOR,
                    summary=summary,
                    detector="supervisor",
                )
            )


def alarm_signal(alarm: OpcUaAlarm) -> Signal:
    """The server's own alarm as a signal: one incident per condition, cleared when the server
    clears it. OPC-UA severities (1..1000) map onto ours in four bands."""
    sev = alarm.severity
    severity = (
        Severity.CRITICAL
        if sev >= 800
        else Severity.MAJOR
        if sev >= 500
        else Severity.MINOR
        if sev >= 200
        else Severity.INFO
    )
    return Signal(
        device=alarm.device,
        rule=f"opcua-alarm:{alarm.condition_id}",
        active=bool(alarm.active) and alarm.retain is not False,
        time=alarm.time,
        category=Category.DEVICE_ALARM,
        severity=severity,
        zone=alarm.source or None,
        summary=f"{alarm.condition}: {alarm.message}",
        detector="opcua-alarms",
        score=float(sev),
    )


class OverflowWatch:
    """gateway-fault on the box while its outbox drops undelivered events to stay in its budget;
    resolved once everything undelivered has gone out."""

    def __init__(self, box_id: str, sink: SignalSink) -> None:
        self._box_id = box_id
        self._sink = sink
        self.overflowing = False

    def dropped(self, dropped_total: int) -> None:
        self.overflowing = True
        self._signal(True, f"outbox full: {dropped_total} undelivered events dropped so far", dropped_total)

    def check(self, undelivered: int, dropped_total: int) -> None:
        if self.overflowing and undelivered == 0:
            self.overflowing = False
            self._signal(False, "outbox drained", dropped_total)

    def _signal(self, active: bool, summary: str, dropped_total: int) -> None:
        self._sink(
            Signal(
                device=self._box_id,
                rule="outbox-overflow",
                active=active,
                time=time.time(),
                category=Category.GATEWAY_FAULT,
                severity=Severity.MAJOR,
                summary=summary,
                detector="outbox",
                value=float(dropped_total) if active else None,
                details={"dropped": dropped_total},
            )
        )


class HaltWatch:
    """gateway-fault on the box while a link is halted (a push channel whose receiver refuses
    every event: the events are kept, and someone has to act); resolved when it connects again."""

    def __init__(self, box_id: str, sink: SignalSink) -> None:
        self._box_id = box_id
        self._sink = sink
        self._halted: set[str] = set()

    def on_state(self, h: SupervisorHealth) -> None:
        if h.halted and h.name not in self._halted:
            self._halted.add(h.name)
            self._signal(h.name, True, h.last_error or "halted")
        elif h.state is DriverState.CONNECTED and h.name in self._halted:
            self._halted.discard(h.name)
            self._signal(h.name, False, f"{h.name} delivering again")

    def _signal(self, link: str, active: bool, summary: str) -> None:
        self._sink(
            Signal(
                device=self._box_id,
                rule=f"link-halted:{link}",
                active=active,
                time=time.time(),
                category=Category.GATEWAY_FAULT,
                severity=Severity.MAJOR,
                summary=summary,
                detector="supervisor",
            )
        )


class StorageWatch:
    """gateway-fault on the box while its state disk is full (events are held in memory, minor
    ones refused); resolved when commits succeed again."""

    def __init__(self, box_id: str, sink: SignalSink) -> None:
        self._box_id = box_id
        self._sink = sink

    def changed(self, why: str | None, refused: int) -> None:
        summary = f"state disk full, low-severity events refused: {why}" if why else "state disk writable again"
        self._sink(
            Signal(
                device=self._box_id,
                rule="state-disk-full",
                active=why is not None,
                time=time.time(),
                # Major: while the disk is full only major and critical events are kept.
                category=Category.GATEWAY_FAULT,
                severity=Severity.MAJOR,
                summary=summary,
                detector="outbox",
                details={"refused": refused},
            )
        )
