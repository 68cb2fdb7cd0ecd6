"""What the site and the outbox become in GB/T 28181 terms: channels (our cameras), alarms, times.

Pure code, shared by the channel and its tests.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_config.camera import CameraDevice
from edge_config.gb28181 import Gb28181Settings
from edge_config.model import GatewayConfig
from gateway.gb28181 import manscdp

__all__ = [
    "ChannelStats",
    "GbCamera",
    "alarm_notice",
    "cameras_of",
    "catalog_items",
    "clock_skew",
    "consumer_of",
    "respond",
]

_PRIORITY = {"critical": 1, "major": 2, "minor": 3, "info": 4}


@dataclass(frozen=True, slots=True)
class GbCamera:
    """A camera as a channel of ours: its device id in the site file and its 20-digit channel id."""

    device: str
    channel_id: str
    name: str
    civil_code: str
    longitude: float | None = None
    latitude: float | None = None
    address: str = ""
    grassroots_code: str | None = None


def cameras_of(cfg: GatewayConfig) -> list[GbCamera]:
    """Our channels: the cameras of the site that have a national id, in site-file order."""
    out = []
    for d in cfg.devices:
        if isinstance(d, CameraDevice) and d.national_id is not None:
            out.append(
                GbCamera(
                    device=d.id,
                    channel_id=d.national_id,
                    name=d.name or d.id,
                    # Digits 1-8 of a national id are the civil code of its place.
                    civil_code=d.civil_code or cfg.site.civil_code or d.national_id[:8],
                    longitude=d.location.longitude,
                    latitude=d.location.latitude,
                    address=d.location.zone or "",
                    grassroots_code=d.grassroots_code,
                )
            )
    return out


def consumer_of(channel_id: str) -> str:
    """The outbox consumer (delivery cursor) of the ``[[upstream.gb28181]]`` table ``channel_id``."""
    return f"gb28181:{channel_id}"


def clock_skew(date: str, now: float) -> float | None:
    """Seconds the platform's ``Date`` is ahead of ``now``; None when the header is unreadable.

    GB/T 28181 platforms send local time without a zone (``2026-12-06T10:20:30.123``), read here
    as the box's local time; an RFC 1123 date (``Sun, 06 Dec 2026 02:20:30 GMT``) is read too.
    """
    text = date.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local time
    return when.timestamp() - now


def _local_time(iso_utc: str) -> str:
    """An RFC 3339 UTC time as GB/T 28181 writes times: local, to the second, no zone."""
    when = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def alarm_notice(body: bytes, channels: dict[str, str]) -> manscdp.AlarmNotice | None:
    """The Alarm Notify an outbox event calls for, or None.

    An alarm is the *opening* of an incident (its updates and resolution are the same physical
    event) of a category with a GB/T 28181 alarm type, on a device that is one of our channels.
    ``channels`` maps device ids to channel ids.
    """
    try:
        ev: dict[str, Any] = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    data = ev.get("data") or {}
    if not str(ev.get("type", "")).endswith(".opened"):
        return None
    gb = data.get("gbt28181") or {}
    place = data.get("place") or {}
    channel = channels.get(str(place.get("device")))
    if gb.get("alarm_type") is None or channel is None:
        return None
    return manscdp.AlarmNotice(
        channel_id=channel,
        priority=_PRIORITY.get(str(data.get("severity")), 4),
        method=int(gb["alarm_method"]),
        alarm_type=int(gb["alarm_type"]),
        time=_local_time(str(data.get("started_at") or ev.get("time"))),
        description=str(data.get("summary") or data.get("category") or "alarm")[:128],
        longitude=place.get("longitude"),
        latitude=place.get("latitude"),
    )


@dataclass(slots=True)
class ChannelStats:
    """What the status page and doctor show about the channel."""

    registered: bool = False
    registrations: int = 0
    keepalive_misses: int = 0
    alarms_sent: int = 0
    last_register_at: float | None = None
    clock_skew_s: float | None = None


def catalog_items(
    cfg: Gb28181Settings, cameras: Sequence[GbCamera], online: Callable[[str], bool]
) -> list[manscdp.CatalogItem]:
    """The catalog's items: our channels, ON or OFF as their cameras stream or not."""
    return [
        manscdp.CatalogItem(
            channel_id=c.channel_id,
            name=c.name,
            civil_code=c.civil_code,
            parent_id=cfg.device_id,
            online=online(c.device),
            longitude=c.longitude,
            latitude=c.latitude,
            address=c.address,
            grassroots_code=c.grassroots_code,
        )
        for c in cameras
    ]


def respond(
    q: manscdp.Query,
    cfg: Gb28181Settings,
    cameras: Sequence[GbCamera],
    online: Callable[[str], bool],
    *,
    box_name: str,
    firmware: str,
) -> list[bytes] | None:
    """The Response MESSAGE bodies for a query or control we support, else None."""
    cs = cfg.charset
    by_channel = {c.channel_id: c for c in cameras}
    cam = by_channel.get(q.device_id)
    if q.root == "Query" and q.cmd == "Catalog":
        items = catalog_items(cfg, cameras, online)
        return manscdp.catalog_pages(q.sn, cfg.device_id, items, cfg.catalog_page, cs, version=cfg.version)
    if q.root == "Query" and q.cmd == "DeviceInfo":
        name, n = (box_name, len(cameras)) if cam is None else (cam.name, 1)
        return [manscdp.device_info(q.sn, q.device_id, name, n, cs, firmware=firmware)]
    if q.root == "Query" and q.cmd == "DeviceStatus":
        up = True if cam is None else online(cam.device)
        return [manscdp.device_status(q.sn, q.device_id, up, datetime.now().strftime("%Y-%m-%dT%H:%M:%S"), cs)]
    if q.root == "Control" and q.cmd == "DeviceControl" and q.text("AlarmCmd") == "ResetAlarm":
        # Our alarms are incidents with their own life: a reset on the platform has nothing to
        # clear here, so it is simply acknowledged.
        return [manscdp.result_response(q.cmd, q.sn, q.device_id, True, cs)]
    return None
