"""CloudEvents 1.0 envelopes for incident events, built with the official SDK.

Each event's ``id`` is '<incident id>.<revision>': unique per event and stable across
re-deliveries, so the platform can drop duplicates of at-least-once delivery. The ``sequence``
extension carries the outbox sequence, zero-padded because the extension orders lexicographically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from gateway.incidents import EventKind, Incident, incident_data

__all__ = ["DATA_SCHEMA", "EVENT_TYPE_PREFIX", "encode_batch", "event_type", "incident_event"]

EVENT_TYPE_PREFIX: Final = "township.edge.incident."
DATA_SCHEMA: Final = "https://township-edge.invalid/schemas/incident/v1"
_FORMAT = JSONFormat()


def event_type(kind: EventKind) -> str:
    return EVENT_TYPE_PREFIX + kind.value


def sequence_text(seq: int) -> str:
    return f"{seq:020d}"


def incident_event(
    *, seq: int, kind: EventKind, incident: Incident, source: str, place: dict[str, Any], time: float
) -> bytes:
    """Serialise one incident event in the CloudEvents JSON format (structured mode)."""
    event = CloudEvent(
        {
            "id": f"{incident.id}.{incident.revision}",
            "source": source,
            "type": event_type(kind),
            "subject": incident.id,
            "time": datetime.fromtimestamp(time, UTC),
            "datacontenttype": "application/json",
            "dataschema": DATA_SCHEMA,
            "sequence": sequence_text(seq),
            "severity": incident.severity.label,
            "category": incident.category.value,
        },
        incident_data(incident, place),
    )
    return _FORMAT.write(event)


def encode_batch(bodies: list[bytes]) -> bytes:
    """A JSON batch (application/cloudevents-batch+json) of already-encoded events, without re-parsing."""
    return b"[" + b",".join(bodies) + b"]"
