"""CloudEvents envelopes: built with the SDK, read back with the SDK, data valid against the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat

from edge_core.signals import Category, Evidence, Severity, Signal
from gateway.envelope import DATA_SCHEMA, EVENT_TYPE_PREFIX, encode_batch, event_type, incident_event
from gateway.incidents import Change, EventKind, Feedback, IncidentManager, RoutingPolicy

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "gateway" / "schemas" / "incident.schema.json").read_text())
T0 = 1_800_000_000.0
PLACE: dict[str, Any] = {
    "box_id": "box-7",
    "township": "攀莲镇",
    "village": "新山村",
    "civil_code": "510422",
    "latitude": None,
    "longitude": None,
    "device_name": "Pump house",
    "zone_name": None,
}
SOURCE = "urn:township-edge:box-7/pump-1"


def s(active: bool, t: float, severity: Severity = Severity.MAJOR, **kw: Any) -> Signal:
    return Signal(
        "pump-1",
        "level-high",
        active,
        t,
        Category.THRESHOLD_BREACH,
        severity,
        point="level",
        summary="level",
        value=kw.pop("value", 5.0),
        threshold=4.0,
        **kw,
    )


class Step:
    """One event as the gateway makes it: the body is built at once, from the incident as it is then."""

    def __init__(self, c: Change, seq: int) -> None:
        assert c.kind is not None
        self.kind, self.time, self.seq = c.kind, c.time, seq
        self.incident_id, self.revision, self.severity = c.incident.id, c.incident.revision, c.incident.severity
        self.body = incident_event(seq=seq, kind=c.kind, incident=c.incident, source=SOURCE, place=PLACE, time=c.time)


def life(first_seq: int = 1) -> list[Step]:
    m = IncidentManager(default_department="office", policy_for=lambda _r: RoutingPolicy(300, 10))
    steps: list[Step] = []

    def keep(c: Change | None) -> None:
        if c is not None and c.kind is not None:
            steps.append(Step(c, first_seq + len(steps)))

    keep(m.apply(s(True, T0, evidence=Evidence("w-1", "application/json"))))
    inc_id = steps[0].incident_id
    keep(m.apply(s(True, T0 + 10)))
    keep(m.apply(s(True, T0 + 11, Severity.CRITICAL)))
    keep(m.acknowledge(inc_id, Feedback("op", T0 + 12, "on it")))
    keep(m.apply(s(False, T0 + 20)))
    keep(m.apply(s(True, T0 + 21)))
    keep(m.close(inc_id, Feedback("chief", T0 + 30)))
    return steps


def test_every_life_step_round_trips_through_the_sdk() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    steps = life(first_seq=41)
    assert [st.kind for st in steps] == [
        EventKind.OPENED,
        EventKind.UPDATED,
        EventKind.UPDATED,
        EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED,
        EventKind.UPDATED,
        EventKind.CLOSED,
    ]
    ids = set()
    for st in steps:
        ev = JSONFormat().read(None, st.body)
        assert ev.get_specversion() == "1.0"
        assert ev.get_id() == f"{st.incident_id}.{st.revision}"
        ids.add(ev.get_id())
        assert ev.get_source() == SOURCE
        assert ev.get_type() == f"township.edge.incident.{st.kind.value}"
        assert ev.get_subject() == st.incident_id
        assert ev.get_time() == datetime.fromtimestamp(st.time, UTC)
        assert ev.get_datacontenttype() == "application/json"
        assert ev.get_dataschema() == DATA_SCHEMA == SCHEMA["$id"]
        assert ev.get_extension("sequence") == f"{st.seq:020d}"
        assert ev.get_extension("severity") == st.severity.label
        assert ev.get_extension("category") == "threshold-breach"
        data = ev.get_data()
        assert isinstance(data, dict)
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == []
        assert data["incident_id"] == st.incident_id and data["revision"] == st.revision
        assert data["severity"] == st.severity.label
        assert data["place"]["device"] == "pump-1" and data["place"]["township"] == "攀莲镇"
    assert [st.seq for st in steps] == list(range(41, 48))
    assert len(ids) == len(steps)  # every event has its own id
    assert len({st.incident_id for st in steps}) == 1  # and all belong to one incident
    statuses = [json.loads(st.body)["data"]["status"] for st in steps]
    assert statuses == ["open", "open", "open", "acknowledged", "resolved", "acknowledged", "closed"]


def test_body_is_plain_utf8_json_in_structured_mode() -> None:
    doc = json.loads(life()[0].body.decode("utf-8"))
    assert doc["specversion"] == "1.0" and isinstance(doc["data"], dict)
    assert "data_base64" not in doc
    assert doc["time"].endswith("Z")


def test_sequence_text_orders_like_the_number() -> None:
    m = IncidentManager(default_department="office", policy_for=lambda _r: RoutingPolicy())
    c = m.apply(s(True, T0))
    assert c is not None
    seqs = [1, 9, 10, 99, 100, 12345678901]
    texts = [
        JSONFormat()
        .read(
            None,
            incident_event(seq=n, kind=EventKind.UPDATED, incident=c.incident, source=SOURCE, place=PLACE, time=c.time),
        )
        .get_extension("sequence")
        for n in seqs
    ]
    assert texts == sorted(texts)
    assert [int(t) for t in texts] == seqs
    assert all(len(t) == 20 for t in texts)


def test_event_type_names() -> None:
    assert {event_type(k) for k in EventKind} == {
        EVENT_TYPE_PREFIX + k for k in ("opened", "updated", "acknowledged", "resolved", "closed")
    }


def test_encode_batch_is_a_json_array_of_the_events_in_order() -> None:
    bodies = [st.body for st in life()]
    batch = json.loads(encode_batch(bodies))
    assert [e["sequence"] for e in batch] == [f"{i:020d}" for i in range(1, len(bodies) + 1)]
    assert batch == [json.loads(b) for b in bodies]
    assert json.loads(encode_batch([])) == []


@pytest.mark.parametrize("kind", list(EventKind))
def test_type_per_life_step(kind: EventKind) -> None:
    m = IncidentManager(default_department="office", policy_for=lambda _r: RoutingPolicy())
    c = m.apply(s(True, T0))
    assert c is not None
    ev = JSONFormat().read(
        None, incident_event(seq=3, kind=kind, incident=c.incident, source=SOURCE, place=PLACE, time=c.time)
    )
    assert ev.get_type() == "township.edge.incident." + kind.value
