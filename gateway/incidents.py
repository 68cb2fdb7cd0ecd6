"""From signals to incidents: one physical event is one incident with a life, never a storm.

An incident opens on the first active signal of its key (device, point or zone, rule), is updated
at most every ``update_interval_s`` (sooner when its severity rises), resolves when the condition
ends, and reopens instead of duplicating when the condition returns within the cooldown. The
platform's acknowledgement and closure are part of the same life: a closed incident is not
reopened by the condition that is still going on; only a new occurrence, after the condition has
ended, opens a new incident.

The manager does no I/O: every change returns :class:`Change` records that the caller commits to
the outbox (events and the incident's row in one transaction), so a restart resumes from the
committed state.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_core.signals import GBT28181_ALARM, Category, Evidence, Severity, Signal

__all__ = [
    "Change",
    "EventKind",
    "Feedback",
    "Incident",
    "IncidentManager",
    "IncidentNotFound",
    "IncidentStatus",
    "RoutingPolicy",
    "incident_data",
]


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class EventKind(enum.StrEnum):
    """The life step an event reports; the CloudEvents type is 'township.edge.incident.<kind>'."""

    OPENED = "opened"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


class IncidentNotFound(LookupError):
    """The platform named an incident this box does not know (or no longer keeps)."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """Who did what to an incident on the platform side, and when."""

    by: str
    at: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Per-rule settings the manager needs; resolved by the caller from config."""

    cooldown_s: float = 300.0
    update_interval_s: float = 60.0


@dataclass(slots=True)
class Incident:
    """The live state of one incident (mutable inside the manager only)."""

    id: str
    device: str
    rule: str
    point: str | None
    zone: str | None
    category: Category
    severity: Severity
    department: str
    summary: str
    detector: str
    started_at: float
    updated_at: float
    status: IncidentStatus = IncidentStatus.OPEN
    ended_at: float | None = None
    # Wall-clock time of the resolution on this box. ``ended_at`` is on the device's clock, which
    # may be hours off; forgetting by it would drop an incident the next signal should reopen.
    ended_seen: float | None = None
    condition_active: bool = True
    score: float | None = None
    peak_score: float | None = None
    value: float | None = None
    threshold: float | None = None
    evidence: Evidence | None = None
    acknowledged: Feedback | None = None
    closed: Feedback | None = None
    details: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    last_emit: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.device, self.point or self.zone or "", self.rule)

    def to_row(self) -> dict[str, Any]:
        """Everything needed to rebuild the incident after a restart (JSON-able)."""
        # Built by hand: dataclasses.asdict deep-copies recursively and showed up in profiles.
        row = {name: getattr(self, name) for name in self.__dataclass_fields__}
        row["category"] = self.category.value
        row["severity"] = int(self.severity)
        row["status"] = self.status.value
        for name in ("evidence", "acknowledged", "closed"):
            value = getattr(self, name)
            if value is not None:
                row[name] = {f: getattr(value, f) for f in value.__dataclass_fields__}
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Incident:
        row = dict(row)
        row["category"] = Category(row["category"])
        row["severity"] = Severity(row["severity"])
        row["status"] = IncidentStatus(row["status"])
        for name, typ in (("evidence", Evidence), ("acknowledged", Feedback), ("closed", Feedback)):
            if row.get(name) is not None:
                row[name] = typ(**row[name])
        return cls(**row)


@dataclass(frozen=True, slots=True)
class Change:
    """An incident after a change, and the event (if any) the change publishes."""

    incident: Incident
    kind: EventKind | None
    time: float


_REMEMBER_CLOSED = 1024


def _new_id(t: float) -> str:
    # Time-ordered and unique without coordination: 48 bits of milliseconds, 48 random bits.
    return f"{int(t * 1000) & 0xFFFFFFFFFFFF:012x}{secrets.token_hex(6)}"


class IncidentManager:
    """Owns the incidents of one box and applies signals and platform feedback to them."""

    def __init__(
        self,
        *,
        default_department: str,
        policy_for: Callable[[str], RoutingPolicy],
        department_for_device: Callable[[str], str | None] = lambda _d: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._default_department = default_department
        self._clock = clock
        self._policy_for = policy_for
        self._department_for_device = department_for_device
        self._by_key: dict[tuple[str, str, str], Incident] = {}
        self._by_id: dict[str, Incident] = {}
        # Closed incidents that are no longer live, newest last: a retried close (the platform did
        # not see our answer) gets the same answer, not a 404. Bounded; kept in memory only.
        self._closed: dict[str, Incident] = {}

    def restore(self, rows: Iterable[dict[str, Any]]) -> None:
        """Load the incidents that were live at the last commit."""
        for row in rows:
            inc = Incident.from_row(row)
            if inc.status is IncidentStatus.RESOLVED and inc.ended_seen is None:
                inc.ended_seen = self._clock()  # a row saved before ended_seen existed
            self._by_id[inc.id] = inc
            self._by_key[inc.key] = inc

    @property
    def incidents(self) -> list[Incident]:
        return list(self._by_id.values())

    @property
    def open(self) -> list[Incident]:
        """Incidents whose condition is still the platform's to handle (open or acknowledged)."""
        return [i for i in self._by_id.values() if i.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)]

    def is_live(self, incident_id: str) -> bool:
        """Whether the incident still absorbs signals or feedback (else it is history)."""
        return incident_id in self._by_id

    def get(self, incident_id: str) -> Incident:
        try:
            return self._by_id[incident_id]
        except KeyError:
            raise IncidentNotFound(incident_id) from None

    def apply(self, sig: Signal) -> Change | None:
        """Apply one signal; return the change to commit, or None when nothing needs saying."""
        inc = self._by_key.get(sig.key)
        if sig.active:
            return self._activate(inc, sig)
        if inc is None or not inc.condition_active:
            return None
        inc.condition_active = False
        inc.updated_at = sig.time
        inc.value = sig.value if sig.value is not None else inc.value
        inc.summary = sig.summary or inc.summary
        if inc.status is IncidentStatus.CLOSED:
            # The platform closed it while the condition lasted; now the condition is over too,
            # so the next occurrence is a new incident. Nothing to publish.
            self._forget(inc)
            return Change(inc, None, sig.time)
        inc.status = IncidentStatus.RESOLVED
        inc.ended_at = sig.time
        inc.ended_seen = self._clock()
        return self._emit(inc, EventKind.RESOLVED, sig.time)

    def _activate(self, inc: Incident | None, sig: Signal) -> Change | None:
        if sig.evidence_only:
            # Evidence fetched after the fact (a snapshot taken once the event opened): link it to
            # whatever incident the key has now, and never open or reopen one for it.
            return None if sig.evidence is None else self._attach_evidence(sig.key, sig.evidence)
        if inc is not None and not inc.condition_active and inc.status is IncidentStatus.RESOLVED:
            cooldown = self._policy_for(sig.rule).cooldown_s
            if inc.ended_at is not None and sig.time - inc.ended_at <= cooldown:
                inc.condition_active = True
                inc.ended_at = None
                inc.ended_seen = None
                inc.status = IncidentStatus.ACKNOWLEDGED if inc.acknowledged else IncidentStatus.OPEN
                self._merge(inc, sig)
                inc.details["reopened"] = int(inc.details.get("reopened", 0)) + 1
                return self._emit(inc, EventKind.UPDATED, sig.time)
            self._forget(inc)
            inc = None
        if inc is None:
            inc = Incident(
                id=_new_id(sig.time),
                device=sig.device,
                rule=sig.rule,
                point=sig.point,
                zone=sig.zone,
                category=sig.category,
                severity=sig.severity,
                department=sig.department or self._department_for_device(sig.device) or self._default_department,
                summary=sig.summary,
                detector=sig.detector,
                started_at=sig.time,
                updated_at=sig.time,
                score=sig.score,
                peak_score=sig.score,
                value=sig.value,
                threshold=sig.threshold,
                evidence=sig.evidence,
                details=dict(sig.details),
            )
            self._by_key[inc.key] = inc
            self._by_id[inc.id] = inc
            return self._emit(inc, EventKind.OPENED, sig.time)
        if inc.status is IncidentStatus.CLOSED:
            return None
        escalated = sig.severity > inc.severity
        new_evidence = sig.evidence is not None and (inc.evidence is None or inc.evidence.ref != sig.evidence.ref)
        self._merge(inc, sig)
        interval = self._policy_for(sig.rule).update_interval_s
        # Escalation and new evidence are news the platform is waiting for: publish them at once.
        if escalated or new_evidence or sig.time - inc.last_emit >= interval:
            return self._emit(inc, EventKind.UPDATED, sig.time)
        return None

    @staticmethod
    def _merge(inc: Incident, sig: Signal) -> None:
        inc.updated_at = sig.time
        inc.severity = max(inc.severity, sig.severity)
        inc.summary = sig.summary or inc.summary
        if sig.value is not None:
            inc.value = sig.value
        if sig.score is not None:
            inc.score = sig.score
            inc.peak_score = sig.score if inc.peak_score is None else max(inc.peak_score, sig.score)
        if sig.evidence is not None:
            inc.evidence = sig.evidence
        inc.details.update(sig.details)

    def _attach_evidence(self, key: tuple[str, str, str], evidence: Evidence) -> Change | None:
        """Link evidence that was produced after the incident opened (a snapshot, a sensor window).

        Published at once as an update: evidence is news the platform is waiting for. It never
        reopens anything; an incident that is gone or closed by then just does not get it.
        """
        inc = self._by_key.get(key)
        if inc is None or inc.status is IncidentStatus.CLOSED:
            return None
        inc.evidence = evidence
        return self._emit(inc, EventKind.UPDATED, inc.updated_at)

    def acknowledge(self, incident_id: str, fb: Feedback) -> Change:
        """Record the platform's acknowledgement. The same acknowledgement again (a retried
        request: same ``by`` and ``note``) changes nothing and publishes nothing."""
        inc = self.get(incident_id)
        if _same_feedback(inc.acknowledged, fb):
            return Change(inc, None, fb.at)
        inc.acknowledged = fb
        if inc.status is IncidentStatus.OPEN:
            inc.status = IncidentStatus.ACKNOWLEDGED
        return self._emit(inc, EventKind.ACKNOWLEDGED, fb.at)

    def close(self, incident_id: str, fb: Feedback) -> Change:
        """Record the platform's closure (a retried one, as for acknowledge, publishes nothing,
        also once the incident is no longer live: the answer is the incident as it was closed)."""
        gone = self._closed.get(incident_id)
        if gone is not None and incident_id not in self._by_id:
            return Change(gone, None, fb.at)
        inc = self.get(incident_id)
        if _same_feedback(inc.closed, fb):
            return Change(inc, None, fb.at)
        inc.closed = fb
        inc.status = IncidentStatus.CLOSED
        if inc.ended_at is None:
            inc.ended_at = fb.at
        change = self._emit(inc, EventKind.CLOSED, fb.at)
        if not inc.condition_active:
            self._forget(inc)
        return change

    def expire(self) -> list[Incident]:
        """Forget resolved incidents whose cooldown is over (they no longer absorb new signals).

        Judged on this box's clock, from when the resolution arrived: the cooldown as the device
        counts it is checked again when the next signal comes (``apply``).
        """
        now = self._clock()
        gone = [
            inc
            for inc in self._by_id.values()
            if inc.status is IncidentStatus.RESOLVED
            and inc.ended_seen is not None
            and now - inc.ended_seen > self._policy_for(inc.rule).cooldown_s
        ]
        for inc in gone:
            self._forget(inc)
        return gone

    def _forget(self, inc: Incident) -> None:
        if inc.status is IncidentStatus.CLOSED:
            self._closed[inc.id] = inc
            if len(self._closed) > _REMEMBER_CLOSED:
                del self._closed[next(iter(self._closed))]
        self._by_id.pop(inc.id, None)
        if self._by_key.get(inc.key) is inc:
            del self._by_key[inc.key]

    @staticmethod
    def _emit(inc: Incident, kind: EventKind, t: float) -> Change:
        inc.revision += 1
        if kind not in (EventKind.ACKNOWLEDGED, EventKind.CLOSED):
            # Updates are rate-limited on the detector's clock; platform feedback carries the
            # platform's clock, so it must not move the mark the next update is measured from.
            inc.last_emit = t
        return Change(inc, kind, t)


def _same_feedback(prev: Feedback | None, fb: Feedback) -> bool:
    # The time is not compared: a client retrying without "at" gets a new server time each try.
    return prev is not None and (prev.by, prev.note) == (fb.by, fb.note)


def iso_time(t: float) -> str:
    """RFC 3339 UTC time with milliseconds, as CloudEvents and the platform expect."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _feedback(fb: Feedback | None) -> dict[str, str] | None:
    return None if fb is None else {"by": fb.by, "at": iso_time(fb.at), "note": fb.note}


def incident_data(inc: Incident, site: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent ``data`` of an incident (schema: gateway/schemas/incident.schema.json)."""
    method, alarm_type = GBT28181_ALARM[inc.category]
    place = dict(site)
    place.update({"device": inc.device, "point": inc.point, "zone": inc.zone})
    return {
        "incident_id": inc.id,
        "status": inc.status.value,
        "category": inc.category.value,
        "severity": inc.severity.label,
        "department": inc.department,
        "summary": inc.summary,
        "place": place,
        "started_at": iso_time(inc.started_at),
        "updated_at": iso_time(inc.updated_at),
        "ended_at": None if inc.ended_at is None else iso_time(inc.ended_at),
        "detector": {
            "name": inc.detector,
            "rule": inc.rule,
            "score": inc.score,
            "peak_score": inc.peak_score,
            "value": inc.value,
            "threshold": inc.threshold,
        },
        "evidence": None
        if inc.evidence is None
        else {
            "ref": inc.evidence.ref,
            "media_type": inc.evidence.media_type,
            "url": f"/api/v1/evidence/{inc.evidence.ref}",
            "description": inc.evidence.description,
            "preview_url": None if inc.evidence.preview is None else f"/api/v1/evidence/{inc.evidence.preview}",
        },
        "feedback": {
            "acknowledged": _feedback(inc.acknowledged),
            "closed": _feedback(inc.closed),
        },
        "gbt28181": {"alarm_method": method, "alarm_type": alarm_type},
        "revision": inc.revision,
        "details": dict(inc.details),  # a snapshot: the live incident keeps changing
    }
