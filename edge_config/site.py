"""Site identity, state, API and outbox sections."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from edge_config._base import Count, Identifier, Number, SecretRef, Section

__all__ = ["ApiSettings", "EvidenceSettings", "LiveViewSettings", "Location", "OutboxSettings", "SiteSettings"]


class Location(Section):
    """Where a device (or the box) is, as the county platform places it on its map."""

    zone: str | None = Field(default=None, max_length=128, description="Named place: a bridge, a gate, a pump house.")
    latitude: Number | None = Field(default=None, ge=-90, le=90, description="WGS-84 latitude in degrees.")
    longitude: Number | None = Field(default=None, ge=-180, le=180, description="WGS-84 longitude in degrees.")


class SiteSettings(Section):
    """Identity of this box in the county's governance network."""

    box_id: Identifier = Field(description="Unique id of this edge box; part of every event's CloudEvents source.")
    township: str = Field(min_length=1, max_length=64, description="Township (乡镇) the box serves.")
    village: str = Field(min_length=1, max_length=64, description="Village or community (村/社区) the box serves.")
    civil_code: str | None = Field(
        default=None, pattern=r"^[0-9]{6,12}$", description="Administrative division code (行政区划代码) of the place."
    )
    latitude: Number | None = Field(default=None, ge=-90, le=90, description="Box latitude, WGS-84 degrees.")
    longitude: Number | None = Field(default=None, ge=-180, le=180, description="Box longitude, WGS-84 degrees.")
    default_department: str = Field(
        default="township-office",
        min_length=1,
        max_length=64,
        description="Department an incident routes to when neither its rule nor its device names one.",
    )
    link_offline_s: Number = Field(
        default=60.0,
        ge=1,
        le=86400,
        description="A broker, PLC or camera link down this long raises device-offline incidents for its devices.",
    )
    source_prefix: str = Field(
        default="urn:township-edge",
        min_length=1,
        max_length=128,
        description="Prefix of the CloudEvents source; the source is '<prefix>:<box_id>/<device>'.",
    )


class LiveViewSettings(Section):
    """The status page's live view over WebRTC (host candidates only: no STUN, no TURN)."""

    enabled: bool = Field(default=True, description="Offer WebRTC; off, the page shows JPEG snapshots only.")
    max_viewers_per_camera: Count = Field(default=2, ge=1, le=16, description="WebRTC viewers of one camera at once.")
    max_viewers: Count = Field(default=4, ge=1, le=64, description="WebRTC viewers of all cameras at once.")
    idle_s: Number = Field(
        default=30.0,
        ge=5,
        le=3600,
        description="A viewer whose page has not said it is still open (it does every 10 s) for this long is closed.",
    )
    interfaces: tuple[str, ...] = Field(
        default=(),
        max_length=8,
        description="Addresses of this box to offer as ICE host candidates; empty: the address the page was "
        "loaded from (the LAN address the technician's browser already reaches).",
    )
    encode_fallback: bool = Field(
        default=True,
        description="When the stream is not H.264 or the browser takes no H.264, encode the analysed frames "
        "(VP8, costs CPU) instead of refusing WebRTC.",
    )

    @field_validator("interfaces")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for a in value:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address of this box (e.g. 192.168.1.20)") from None
        return value


class ApiSettings(Section):
    """The local HTTP API and status page."""

    listen: str = Field(
        default="127.0.0.1", max_length=64, description="Address to bind; 0.0.0.0 exposes it on the LAN."
    )
    port: Count = Field(default=8780, ge=1, le=65535, description="TCP port of the API.")
    token: SecretRef = Field(description="Bearer token required on every route except /healthz.")
    technician_token: SecretRef | None = Field(
        default=None,
        description="The technician's token (the page's login): everything the platform's token may do, and "
        "editing zones, which the platform's token may not.",
    )
    viewer_token: SecretRef | None = Field(
        default=None,
        description="A read-only token: it may look (status, incidents, live view) and change nothing.",
    )
    live_view: LiveViewSettings = Field(default_factory=LiveViewSettings, description="WebRTC live view.")
    max_wait_s: Number = Field(default=30.0, ge=0, le=300, description="Longest long-poll wait a client may ask for.")


class OutboxSettings(Section):
    """The durable store-and-forward queue."""

    budget_mb: Number = Field(
        default=256.0, ge=0.01, le=1_000_000, description="Byte budget for undelivered events, in MiB."
    )
    keep_delivered_days: Number = Field(
        default=7.0, ge=0, le=3650, description="How long delivered events stay readable in the feed."
    )
    commit_interval_ms: Number = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="Extra wait before a commit to gather more events into it. 0: commit as soon as the "
        "previous commit is done; what arrives meanwhile forms the next group (lowest latency).",
    )


class EvidenceSettings(Section):
    """Evidence files (camera snapshots, sensor windows) in the state directory."""

    budget_mb: Number = Field(
        default=512.0, ge=1, le=1_000_000, description="Byte budget for evidence files in MiB; the oldest go first."
    )
