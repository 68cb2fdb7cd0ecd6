"""IncidentManager: one physical event is one incident with a life, and its data matches the schema.

Why this file is long: an incident's life (open, update, resolve, feedback, restore) is one
state machine, tested with one set of helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_core.signals import GBT28181_ALARM, Category, Evidence, Severity, Signal
from gateway.incidents import (
    Change,
    EventKind,
    Feedback,
    Incident,
    IncidentManager,
    IncidentNotFound,
    IncidentStatus,
    RoutingPolicy,
    incident_data,
    iso_time,
)

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "gateway" / "schemas" / "incident.schema.json"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SITE: dict[str, Any] = {
    "box_id": "box-7",
    "township": "攀莲镇",
    "village": "新山村",
    "civil_code": "510422",
    "latitude": 26.89,
    "longitude": 102.11,
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    assert cls is jsonschema.Draft202012Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def sig(
    active: bool,
    t: float,
    *,
    severity: Severity = Severity.MAJOR,
    device: str = "pump-1",
    point: str | None = "level",
    zone: str | None = None,
    rule: str = "level-high",
    category: Category = Category.THRESHOLD_BREACH,
    **kw: Any,
) -> Signal:
    return Signal(
        device=device,
        rule=rule,
        active=active,
        time=t,
        category=category,
        severity=severity,
        point=point,
        zone=zone,
        summary=kw.pop("summary", f"level {'high' if active else 'ok'}"),
        **kw,
    )


def manager(cooldown_s: float = 300.0, update_interval_s: float = 60.0, **kw: Any) -> IncidentManager:
    policy = RoutingPolicy(cooldown_s=cooldown_s, update_interval_s=update_interval_s)
    return IncidentManager(default_department="township-office", policy_for=lambda _rule: policy, **kw)


def must(change: Change | None) -> Change:
    assert change is not None
    return change


# -- life ------------------------------------------------------------------------------------


def test_one_physical_event_is_one_incident_with_rate_limited_updates() -> None:
    m = manager(update_interval_s=60)
    opened = must(m.apply(sig(True, T0, value=5.0, threshold=4.0)))
    assert opened.kind is EventKind.OPENED
    inc = opened.incident
    assert inc.status is IncidentStatus.OPEN and inc.revision == 1 and inc.started_at == T0

    # A storm of active signals inside the update interval says nothing new...
    for i in range(1, 60):
        assert m.apply(sig(True, T0 + i, value=5.0 + i / 100)) is None
    # ...but the state still follows the readings.
    assert inc.value == pytest.approx(5.59) and inc.updated_at == T0 + 59
    assert len(m.incidents) == 1

    upd = must(m.apply(sig(True, T0 + 60, value=6.0)))
    assert upd.kind is EventKind.UPDATED and upd.incident is inc and inc.revision == 2
    # The interval counts from the last event, not from the opening.
    assert m.apply(sig(True, T0 + 119)) is None
    assert must(m.apply(sig(True, T0 + 120))).kind is EventKind.UPDATED

    res = must(m.apply(sig(False, T0 + 130, value=3.0)))
    assert res.kind is EventKind.RESOLVED and res.incident is inc
    assert inc.status is IncidentStatus.RESOLVED and inc.ended_at == T0 + 130 and inc.value == 3.0  # type: ignore[comparison-overlap]
    assert inc.revision == 4
    # The end is said once.
    assert m.apply(sig(False, T0 + 131)) is None


def test_severity_escalation_updates_at_once_and_never_deescalates() -> None:
    m = manager(update_interval_s=600)
    inc = must(m.apply(sig(True, T0, severity=Severity.MINOR))).incident
    up = must(m.apply(sig(True, T0 + 1, severity=Severity.CRITICAL)))
    assert up.kind is EventKind.UPDATED and inc.severity is Severity.CRITICAL
    # Lower severity afterwards: no event, and the incident keeps its peak severity.
    assert m.apply(sig(True, T0 + 2, severity=Severity.MINOR)) is None
    assert inc.severity is Severity.CRITICAL
    # Same severity again is not an escalation.
    assert m.apply(sig(True, T0 + 3, severity=Severity.CRITICAL)) is None


def test_inactive_signal_without_incident_says_nothing() -> None:
    m = manager()
    assert m.apply(sig(False, T0)) is None
    assert m.incidents == []


def test_scores_keep_the_peak() -> None:
    m = manager(update_interval_s=1)
    inc = must(m.apply(sig(True, T0, score=0.5))).incident
    m.apply(sig(True, T0 + 5, score=0.9))
    m.apply(sig(True, T0 + 10, score=0.7))
    assert inc.score == 0.7 and inc.peak_score == 0.9


def test_dedup_key_is_device_point_or_zone_and_rule() -> None:
    m = manager()
    a = must(m.apply(sig(True, T0, point="level")))
    b = must(m.apply(sig(True, T0, point="flow")))
    c = must(m.apply(sig(True, T0, point="level", rule="level-rate")))
    d = must(m.apply(sig(True, T0, point="level", device="pump-2")))
    e = must(m.apply(sig(True, T0, point=None, zone="gate", device="cam-1", category=Category.INTRUSION)))
    assert {x.kind for x in (a, b, c, d, e)} == {EventKind.OPENED}
    ids = {x.incident.id for x in (a, b, c, d, e)}
    assert len(ids) == 5
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert m.apply(sig(True, T0 + 1, point="level")) is None  # absorbed by a
    assert len(m.incidents) == 5


def test_ids_are_time_ordered() -> None:
    m = manager()
    first = must(m.apply(sig(True, T0, point="a"))).incident.id
    later = must(m.apply(sig(True, T0 + 0.002, point="b"))).incident.id
    assert first[:12] < later[:12]


def test_reopen_within_cooldown_then_new_incident_after_it() -> None:
    m = manager(cooldown_s=300)
    inc = must(m.apply(sig(True, T0))).incident
    m.apply(sig(False, T0 + 10))
    again = must(m.apply(sig(True, T0 + 10 + 300)))  # exactly at the cooldown edge: still the same one
    assert again.kind is EventKind.UPDATED and again.incident is inc
    assert inc.status is IncidentStatus.OPEN and inc.ended_at is None and inc.condition_active
    assert inc.details["reopened"] == 1
    m.apply(sig(False, T0 + 400))
    late = must(m.apply(sig(True, T0 + 400 + 300.5)))
    assert late.kind is EventKind.OPENED and late.incident.id != inc.id
    assert late.incident.revision == 1
    assert not m.is_live(inc.id) and m.is_live(late.incident.id)


class FakeClock:
    """The box's wall clock, moved by hand (signals carry the device's own clock)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_expire_forgets_resolved_incidents_after_cooldown() -> None:
    clock = FakeClock(T0)
    m = manager(cooldown_s=60, clock=clock)
    inc = must(m.apply(sig(True, T0))).incident
    clock.t = T0 + 1000
    assert m.expire() == []  # open incidents never expire
    m.apply(sig(False, T0 + 10))
    clock.t = T0 + 1060
    assert m.expire() == []
    clock.t = T0 + 1060.1
    assert m.expire() == [inc]
    assert not m.is_live(inc.id)
    with pytest.raises(IncidentNotFound):
        m.get(inc.id)
    assert must(m.apply(sig(True, T0 + 71))).kind is EventKind.OPENED


@pytest.mark.parametrize("skew_s", [-7200.0, 7200.0])
def test_device_clock_skew_neither_drops_nor_keeps_a_resolved_incident(skew_s: float) -> None:
    # A device whose clock is two hours off: the cooldown still runs on the box's clock, so the
    # condition returning 30 s later reopens the same incident, and 61 s of quiet forget it.
    clock = FakeClock(T0)
    m = manager(cooldown_s=60, clock=clock)
    dev = T0 + skew_s
    inc = must(m.apply(sig(True, dev))).incident
    m.apply(sig(False, dev + 10))
    clock.t = T0 + 40
    assert m.expire() == []
    again = must(m.apply(sig(True, dev + 40)))
    assert again.kind is EventKind.UPDATED and again.incident is inc
    clock.t = T0 + 50
    m.apply(sig(False, dev + 50))
    clock.t = T0 + 50 + 60
    assert m.expire() == []
    clock.t = T0 + 50 + 60.1
    assert m.expire() == [inc]


def test_restored_resolved_incident_without_resolution_time_gets_a_full_cooldown() -> None:
    clock = FakeClock(T0)
    m = manager(cooldown_s=60, clock=clock)
    inc = must(m.apply(sig(True, T0 - 5000))).incident
    m.apply(sig(False, T0 - 4990))
    row = inc.to_row()
    del row["ended_seen"]  # as saved by a gateway before the field existed
    clock.t = T0 + 100
    restored = manager(cooldown_s=60, clock=clock)
    restored.restore([row])
    clock.t = T0 + 159
    assert restored.expire() == []
    clock.t = T0 + 160.1
    assert [i.id for i in restored.expire()] == [inc.id]


def test_acknowledge_then_reopen_keeps_acknowledged() -> None:
    m = manager()
    inc = must(m.apply(sig(True, T0))).incident
    ack = m.acknowledge(inc.id, Feedback("operator-3", T0 + 5, "dispatched to water bureau"))
    assert ack.kind is EventKind.ACKNOWLEDGED and ack.time == T0 + 5
    assert inc.status is IncidentStatus.ACKNOWLEDGED and inc.acknowledged is not None
    # Still absorbs its condition, as an acknowledged incident.
    m.apply(sig(True, T0 + 100))
    assert inc.status is IncidentStatus.ACKNOWLEDGED
    assert must(m.apply(sig(False, T0 + 110))).kind is EventKind.RESOLVED
    m.acknowledge(inc.id, Feedback("operator-3", T0 + 111))
    assert inc.status is IncidentStatus.RESOLVED  # type: ignore[comparison-overlap]  # acknowledging does not reopen
    m.apply(sig(True, T0 + 120))
    assert inc.status is IncidentStatus.ACKNOWLEDGED


def test_closed_incident_is_not_reopened_while_its_condition_lasts() -> None:
    m = manager(cooldown_s=300, update_interval_s=1)
    inc = must(m.apply(sig(True, T0))).incident
    closed = m.close(inc.id, Feedback("chief", T0 + 30, "handled on site"))
    assert closed.kind is EventKind.CLOSED
    assert inc.status is IncidentStatus.CLOSED and inc.ended_at == T0 + 30
    rev = inc.revision
    # The same ongoing condition, even escalating, publishes nothing and opens nothing.
    for i in range(1, 20):
        assert m.apply(sig(True, T0 + 30 + i * 10, severity=Severity.CRITICAL)) is None
    assert inc.revision == rev and len(m.incidents) == 1
    # The condition ends: nothing to publish, but the incident is now history (state to save).
    end = must(m.apply(sig(False, T0 + 300)))
    assert end.kind is None and end.incident is inc
    assert not m.is_live(inc.id)
    # A new occurrence, even within the cooldown, is a new incident.
    new = must(m.apply(sig(True, T0 + 301)))
    assert new.kind is EventKind.OPENED and new.incident.id != inc.id


def test_closing_a_resolved_incident_ends_it_for_good() -> None:
    m = manager(cooldown_s=300)
    inc = must(m.apply(sig(True, T0))).incident
    m.apply(sig(False, T0 + 10))
    c = m.close(inc.id, Feedback("chief", T0 + 20))
    assert c.kind is EventKind.CLOSED and inc.ended_at == T0 + 10  # the condition's end is kept
    assert not m.is_live(inc.id)
    new = must(m.apply(sig(True, T0 + 30)))  # within the cooldown, but closed: new incident
    assert new.kind is EventKind.OPENED and new.incident.id != inc.id


def test_a_retried_acknowledgement_or_closure_publishes_nothing() -> None:
    # The platform's HTTP client retries on a timeout: the same feedback twice is one event.
    m = manager()
    inc = must(m.apply(sig(True, T0))).incident
    assert m.acknowledge(inc.id, Feedback("operator-3", T0 + 5, "sent")).kind is EventKind.ACKNOWLEDGED
    rev = inc.revision
    again = m.acknowledge(inc.id, Feedback("operator-3", T0 + 9, "sent"))
    assert again.kind is None and inc.revision == rev and inc.acknowledged == Feedback("operator-3", T0 + 5, "sent")
    # Someone else acknowledging is news.
    assert m.acknowledge(inc.id, Feedback("fire-brigade", T0 + 12)).kind is EventKind.ACKNOWLEDGED
    # Closed while the condition lasts (so still held): a retried close is nothing new either.
    assert m.close(inc.id, Feedback("chief", T0 + 20)).kind is EventKind.CLOSED
    rev = inc.revision
    assert m.close(inc.id, Feedback("chief", T0 + 25)).kind is None and inc.revision == rev


def test_a_retried_close_of_an_incident_no_longer_live_answers_the_same() -> None:
    # Closed after its condition ended, the incident is forgotten at once; the platform, which
    # missed our 200, retries: it must get the same closed incident back, not a 404.
    m = manager()
    inc = must(m.apply(sig(True, T0))).incident
    m.apply(sig(False, T0 + 10))
    assert m.close(inc.id, Feedback("chief", T0 + 20)).kind is EventKind.CLOSED
    assert not m.is_live(inc.id)
    again = m.close(inc.id, Feedback("chief", T0 + 25))
    assert again.kind is None and again.incident is inc and inc.closed == Feedback("chief", T0 + 20)
    # Also when it was closed while the condition lasted and forgotten when the condition ended.
    inc2 = must(m.apply(sig(True, T0 + 30))).incident
    m.close(inc2.id, Feedback("chief", T0 + 31))
    m.apply(sig(False, T0 + 40))
    assert not m.is_live(inc2.id)
    assert m.close(inc2.id, Feedback("chief", T0 + 50)).incident is inc2


def test_feedback_for_unknown_incident() -> None:
    m = manager()
    with pytest.raises(IncidentNotFound):
        m.acknowledge("0" * 24, Feedback("x", T0))
    with pytest.raises(IncidentNotFound):
        m.close("0" * 24, Feedback("x", T0))


def test_department_precedence() -> None:
    m = manager(department_for_device={"pump-1": "water-bureau"}.get)
    assert must(m.apply(sig(True, T0, department="emergency"))).incident.department == "emergency"
    assert must(m.apply(sig(True, T0, point="flow"))).incident.department == "water-bureau"
    assert must(m.apply(sig(True, T0, device="pump-9"))).incident.department == "township-office"


# -- persistence ------------------------------------------------------------------------------


def test_row_round_trip_through_json_and_restore_continues_the_life() -> None:
    m = manager(update_interval_s=60)
    ev = Evidence("ev-123", "application/json", "readings 08:00-08:05")
    inc = must(
        m.apply(sig(True, T0, score=2.5, value=7.0, threshold=4.0, evidence=ev, details={"window_s": 60}))
    ).incident
    m.acknowledge(inc.id, Feedback("op", T0 + 1, "seen"))
    row = json.loads(json.dumps(inc.to_row()))
    assert row["category"] == "threshold-breach" and row["severity"] == 2 and row["status"] == "acknowledged"
    back = Incident.from_row(row)
    assert back == inc
    assert back.evidence == ev and isinstance(back.acknowledged, Feedback)

    m2 = manager(update_interval_s=60)
    m2.restore([row])
    assert m2.is_live(inc.id)
    # The restored incident absorbs the ongoing condition (same rate limit, no duplicate)...
    assert m2.apply(sig(True, T0 + 30)) is None
    # ...and resolves with its revision continuing.
    res = must(m2.apply(sig(False, T0 + 40)))
    assert res.kind is EventKind.RESOLVED and res.incident.id == inc.id
    assert res.incident.revision == inc.revision + 1
    assert res.incident.status is IncidentStatus.RESOLVED


def test_restored_closed_incident_still_blocks_its_condition() -> None:
    m = manager()
    inc = must(m.apply(sig(True, T0))).incident
    m.close(inc.id, Feedback("chief", T0 + 1))
    row = json.loads(json.dumps(inc.to_row()))
    m2 = manager()
    m2.restore([row])
    assert m2.apply(sig(True, T0 + 100)) is None
    assert must(m2.apply(sig(False, T0 + 200))).kind is None
    assert must(m2.apply(sig(True, T0 + 201))).kind is EventKind.OPENED


# -- data and schema --------------------------------------------------------------------------


def life_of_one_incident() -> list[tuple[Change, dict[str, Any]]]:
    """Every life step once (and a second incident closed while active), with the data each publishes."""
    m = manager(cooldown_s=300, update_interval_s=10, department_for_device={"cam-1": "public-security"}.get)
    place = {
        **SITE,
        "device_name": "North gate camera",
        "zone_name": "north gate",
        "national_id": "51042200001320000001",
        "civil_code": "510422102",
    }
    out: list[tuple[Change, dict[str, Any]]] = []

    def keep(c: Change | None) -> None:
        if c is not None and c.kind is not None:
            out.append((c, incident_data(c.incident, place)))

    cam: dict[str, Any] = dict(
        device="cam-1", point=None, zone="gate", rule="intrusion", category=Category.INTRUSION, detector="motion"
    )
    ev = Evidence("snap-1", "image/jpeg", "person at the gate")
    keep(m.apply(sig(True, T0, score=0.8, evidence=ev, details={"boxes": 1, "night": True}, **cam)))
    keep(m.apply(sig(True, T0 + 11, score=0.95, **cam)))
    keep(m.apply(sig(True, T0 + 12, severity=Severity.CRITICAL, **cam)))
    inc = out[0][0].incident
    keep(m.acknowledge(inc.id, Feedback("platform:operator-3", T0 + 13, "dispatched")))
    keep(m.apply(sig(False, T0 + 20, **cam)))
    keep(m.apply(sig(True, T0 + 25, **cam)))  # reopen within cooldown
    keep(m.apply(sig(False, T0 + 30, **cam)))
    keep(m.close(inc.id, Feedback("platform:chief", T0 + 40, "")))
    other = must(m.apply(sig(True, T0 + 50, point="level", severity=Severity.INFO)))
    keep(other)
    keep(m.close(other.incident.id, Feedback("platform:chief", T0 + 51, "known leak")))
    return out


def test_every_life_step_validates_against_the_schema(validator: jsonschema.protocols.Validator) -> None:
    steps = life_of_one_incident()
    kinds = [c.kind for c, _ in steps]
    assert kinds == [
        EventKind.OPENED,
        EventKind.UPDATED,
        EventKind.UPDATED,
        EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED,
        EventKind.UPDATED,
        EventKind.RESOLVED,
        EventKind.CLOSED,
        EventKind.OPENED,
        EventKind.CLOSED,
    ]
    for _c, data in steps:
        errors = sorted(validator.iter_errors(data), key=str)
        assert errors == [], [e.message for e in errors]
    statuses = [d["status"] for _c, d in steps]
    assert statuses == [
        "open",
        "open",
        "open",
        "acknowledged",
        "resolved",
        "acknowledged",
        "resolved",
        "closed",
        "open",
        "closed",
    ]
    # Revisions grow by one per event of the same incident.
    assert [d["revision"] for _c, d in steps[:8]] == list(range(1, 9))


def test_incident_data_content() -> None:
    steps = life_of_one_incident()
    first = steps[0][1]
    assert first["category"] == "intrusion" and first["severity"] == "major"
    assert first["department"] == "public-security"
    assert first["gbt28181"] == {"alarm_method": 5, "alarm_type": 6}
    assert first["evidence"] == {
        "ref": "snap-1",
        "media_type": "image/jpeg",
        "url": "/api/v1/evidence/snap-1",
        "preview_url": None,  # a JPEG is its own preview; a sensor window's JSON has a plot
        "description": "person at the gate",
    }
    assert first["place"]["device"] == "cam-1" and first["place"]["zone"] == "gate" and first["place"]["point"] is None
    assert first["place"]["national_id"] == "51042200001320000001"
    assert first["started_at"] == "2027-01-15T08:00:00.000Z" and first["ended_at"] is None
    assert first["detector"]["name"] == "motion" and first["detector"]["rule"] == "intrusion"
    assert first["details"] == {"boxes": 1, "night": True}
    escalated = steps[2][1]
    assert escalated["severity"] == "critical" and escalated["detector"]["peak_score"] == 0.95
    ack = steps[3][1]
    assert ack["feedback"]["acknowledged"] == {
        "by": "platform:operator-3",
        "at": "2027-01-15T08:00:13.000Z",
        "note": "dispatched",
    }
    closed = steps[7][1]
    assert closed["feedback"]["closed"]["by"] == "platform:chief"
    assert closed["ended_at"] == "2027-01-15T08:00:30.000Z"
    # Data is plain JSON.
    json.dumps([d for _c, d in steps], allow_nan=False)


def test_every_category_maps_to_gbt28181_and_validates(validator: jsonschema.protocols.Validator) -> None:
    for cat in Category:
        m = manager()
        inc = must(m.apply(sig(True, T0, category=cat))).incident
        data = incident_data(inc, SITE)
        assert validator.is_valid(data), cat
        assert (data["gbt28181"]["alarm_method"], data["gbt28181"]["alarm_type"]) == GBT28181_ALARM[cat]


def test_schema_rejects_what_the_gateway_never_sends(validator: jsonschema.protocols.Validator) -> None:
    m = manager()
    inc = must(m.apply(sig(True, T0))).incident
    good = incident_data(inc, SITE)
    assert validator.is_valid(good)

    def bad(mutate: Any) -> bool:
        data = json.loads(json.dumps(good))
        mutate(data)
        return not validator.is_valid(data)

    assert bad(lambda d: d.update(status="reopened"))
    assert bad(lambda d: d.update(category="fire"))
    assert bad(lambda d: d.update(severity="high"))
    assert bad(lambda d: d.update(extra=1))
    assert bad(lambda d: d.pop("department"))
    assert bad(lambda d: d["detector"].update(model="x"))
    assert bad(lambda d: d["place"].update(street="x"))
    assert bad(lambda d: d["place"].pop("device"))
    assert bad(lambda d: d["place"].update(national_id="123"))
    assert bad(lambda d: d.update(started_at="2027-01-15 08:00:00"))
    assert bad(lambda d: d.update(ended_at="2027-01-15T08:00:00.000Z"))  # open yet ended
    assert bad(lambda d: d.update(status="resolved"))  # resolved without an end
    assert bad(lambda d: d.update(status="acknowledged"))  # acknowledged by nobody
    assert bad(lambda d: d.update(revision=0))
    assert bad(lambda d: d["details"].update(nested={"a": 1}))


def test_iso_time_is_utc_with_milliseconds() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(T0 + 0.1234) == "2027-01-15T08:00:00.123Z"
