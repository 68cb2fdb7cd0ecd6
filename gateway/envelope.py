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

from edge_config.model import GatewayConfig
from gateway.incidents import EventKind, Incident, incident_data

__all__ = ["DATA_SCHEMA", "EVENT_TYPE_PREFIX", "encode_batch", "event_type", "incident_event", "place_of"]

EVENT_TYPE_PREFIX: Final = "township.edge.incident."
DATA_SCHEMA: Final = "https://township-edge.invalid/schemas/incident/v1"
_FORMAT = JSONFormat()


def event_type(kind: EventKind) -> str:
    return EVENT_TYPE_PREFIX + kind.value


def sequence_text(seq: int) -> str:
    return f"{seq:020d}"


def place_of(cfg: GatewayConfig, device_id: str) -> dict[str, Any]:
    """Where a device is, as every event about it says: the box's site, narrowed by the device's
    own name, location and GB/T 28181 identity when the site file gives them."""
    site = cfg.site
    place: dict[str, Any] = {
        "box_id": site.box_id,
        "township": site.township,
        "village": site.village,
        "civil_code": site.civil_code,
        "latitude": site.latitude,
        "longitude": site.longitude,
    }
    dev = next((d for d in cfg.devices if d.id == device_id), None)
    if dev is not None:
        place["device_name"] = getattr(dev, "name", None)
        loc = getattr(dev, "location", None)
        if loc is not None:
            place["zone_name"] = loc.zone
            if loc.latitude is not None:
                place["latitude"], place["longitude"] = loc.latitude, loc.longitude
        for extra in ("national_id", "civil_code"):
            if getattr(dev, extra, None):
                place[extra] = getattr(dev, extra)
    return place


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
