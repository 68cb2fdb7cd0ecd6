"""The whole site configuration: one TOML file per box."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from edge_config._base import Section
from edge_config.camera import CameraDevice
from edge_config.mqtt import MqttBroker, MqttDevice
from edge_config.opcua import OpcUaDevice
from edge_config.rules import Rule
from edge_config.site import ApiSettings, EvidenceSettings, OutboxSettings, SiteSettings
from edge_config.upstream import UpstreamSettings

__all__ = ["Device", "GatewayConfig"]

# Every device kind joins this union; 'kind' picks the model, so an error names the right fields.
Device = Annotated[MqttDevice | CameraDevice | OpcUaDevice, Field(discriminator="kind")]


class GatewayConfig(Section):
    """A box's site configuration."""

    site: SiteSettings = Field(description="Who and where this box is.")
    state_dir: Path | None = Field(
        default=None,
        description="Writable state directory (outbox, evidence, caches). Default: $STATE_DIRECTORY, "
        "as systemd's StateDirectory= sets it, else /var/lib/edge-gateway.",
    )
    api: ApiSettings = Field(description="Local HTTP API.")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, description="Durable outbox.")
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings, description="Evidence files.")
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings, description="Push channels.")
    brokers: list[MqttBroker] = Field(default_factory=list, max_length=64, description="MQTT brokers.")
    devices: list[Device] = Field(default_factory=list, max_length=10_000, description="Devices.")
    rules: list[Rule] = Field(default_factory=list, max_length=10_000, description="Rules over readings.")
