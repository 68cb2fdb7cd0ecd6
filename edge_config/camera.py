"""ONVIF cameras: how to reach them, which streams to use, and how to watch them."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field, model_validator

from edge_config._base import Count, HostName, Identifier, Number, SecretRef, Section
from edge_config.site import Location
from edge_config.vision import VisionSettings

__all__ = ["CameraDevice", "EventGating", "ProfileChoice", "StreamMode", "StreamSettings"]


class StreamMode(enum.StrEnum):
    """How frames reach the analysis stage."""

    RTSP = "rtsp"
    """Decode every frame of the stream (rate-limited to ``analysis_fps``)."""
    KEYFRAMES = "keyframes"
    """Decode key frames only: cheap, about one frame per GOP."""
    SNAPSHOT = "snapshot"
    """Fetch the ONVIF snapshot JPEG every ``snapshot_interval_s``: for weak links or cameras."""


class EventGating(enum.StrEnum):
    """When local pixel analysis runs."""

    ALWAYS = "always"
    """Analyse every frame, ignore the camera's own motion events for gating."""
    CAMERA_MOTION = "camera_motion"
    """Analyse only while the camera itself reports motion (saves CPU)."""
    BOTH = "both"
    """Analyse always, and also raise the camera's own motion events as incidents."""


class ProfileChoice(Section):
    """Which media profile serves which purpose. Empty names pick automatically."""

    analysis: str | None = Field(
        default=None,
        max_length=64,
        description="Profile token for analysis; default: the smallest H.264 profile (the sub stream).",
    )
    evidence: str | None = Field(
        default=None,
        max_length=64,
        description="Profile token for evidence snapshots; default: the largest profile (the main stream).",
    )


class StreamSettings(Section):
    """Ingest of the analysis stream."""

    mode: StreamMode = Field(default=StreamMode.RTSP, description="rtsp, keyframes or snapshot polling.")
    analysis_fps: Number = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Frames per second handed to analysis in rtsp mode (others are decoded and dropped).",
    )
    snapshot_interval_s: Number = Field(
        default=2.0, ge=0.2, le=3600, description="Snapshot polling period in snapshot mode."
    )
    open_timeout_s: Number = Field(
        default=10.0, ge=0.5, le=120, description="RTSP open (connect and DESCRIBE/SETUP) timeout."
    )
    stall_timeout_s: Number = Field(
        default=5.0,
        ge=0.5,
        le=600,
        description="No frame for this long is a stall: the stream is reopened.",
    )
    offline_after_s: Number = Field(
        default=15.0,
        ge=0.5,
        le=86_400,
        description="No frame for this long raises a camera-offline incident (resolved when frames return).",
    )
    reconnect_max_s: Number = Field(default=30.0, ge=0.1, le=3600, description="Cap of the reconnect backoff.")
    url_override: str | None = Field(
        default=None,
        max_length=2048,
        description="RTSP URL to use instead of the one ONVIF reports (without credentials; they are added).",
    )


class CameraDevice(Section):
    """An ONVIF IP camera."""

    kind: Literal["onvif"] = Field(description="Device kind.")
    id: Identifier = Field(description="Device id; appears in incidents, logs and metrics.")
    name: str | None = Field(default=None, max_length=128, description="Human name shown on the status page.")
    host: HostName = Field(description="Camera host name or address.")
    port: Count = Field(default=80, ge=1, le=65535, description="ONVIF (HTTP) port of the camera.")
    username: str | None = Field(default=None, max_length=128, description="ONVIF user (WS-UsernameToken).")
    password: SecretRef | None = Field(default=None, description="ONVIF password, from a credential or file.")
    national_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{20}$",
        description="GB/T 28181 20-digit national device id (type code 132, IP camera): its channel id "
        "on the county video platform.",
    )
    civil_code: str | None = Field(
        default=None,
        pattern=r"^[0-9]{6,12}$",
        description="Administrative division code of the camera's place.",
    )
    grassroots_code: str | None = Field(
        default=None,
        pattern=r"^[0-9]{6,20}$",
        description="GB/T 28181-2022 grassroots-organisation code (基层组织编码); the catalog says 000000 when none.",
    )
    profiles: ProfileChoice = Field(default_factory=ProfileChoice, description="Analysis and evidence profiles.")
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Stream ingest.")
    allow_set_time: bool = Field(
        default=False,
        description="Set the camera's clock to ours when it is more than 5 s off (auth depends on it).",
    )
    events: bool = Field(default=True, description="Subscribe to the camera's own ONVIF events (PullPoint).")
    event_quiet_s: Number = Field(
        default=600.0,
        ge=5,
        le=86_400,
        description="A subscription silent this long while the camera still answers is recreated.",
    )
    gating: EventGating = Field(default=EventGating.ALWAYS, description="When local analysis runs.")
    vision: VisionSettings = Field(default_factory=VisionSettings, description="Motion, tamper and zones.")
    department: str | None = Field(default=None, max_length=64, description="Department its incidents route to.")
    location: Location = Field(default_factory=Location, description="Where the camera is.")

    @model_validator(mode="after")
    def _password_needs_user(self) -> CameraDevice:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        # Digits 11-13 of a national id are its type; the platform files a channel of another type
        # (a 131 analogue camera, a 111 DVR) under the wrong tree, or refuses it.
        if self.national_id is not None and self.national_id[10:13] != "132":
            raise ValueError(
                f"national_id {self.national_id} has type code {self.national_id[10:13]} (digits 11-13); "
                "an IP camera's channel id has 132 there"
            )
        return self
