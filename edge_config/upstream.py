"""Where incidents go: the platform's webhook, MQTT broker, NATS cluster and GB/T 28181 video
platform (the pull feed needs no config)."""

from __future__ import annotations

from pydantic import Field, HttpUrl, model_validator

from edge_config._base import Identifier, Number, SecretRef, Section
from edge_config.gb28181 import Gb28181Settings
from edge_config.nats import NatsUplink
from edge_config.tls import TlsSettings

__all__ = ["MqttUplink", "NatsUplink", "UpstreamSettings", "WebhookSettings"]


class WebhookSettings(Section):
    """Push each event to the platform over HTTP (CloudEvents HTTP binding, structured mode)."""

    url: HttpUrl = Field(description="Receiver URL.")
    secret: SecretRef | None = Field(
        default=None, description="HMAC-SHA256 key; the body's signature goes in X-Signature-256."
    )
    timeout_s: Number = Field(default=10.0, gt=0, le=300, description="Per-request timeout.")
    max_backoff_s: Number = Field(default=60.0, ge=1, le=3600, description="Longest wait between retries.")
    tls: TlsSettings | None = Field(
        default=None,
        description="Trust and client certificate for an https:// url; none: the system's CAs, no client certificate.",
    )

    @model_validator(mode="after")
    def _tls_needs_https(self) -> WebhookSettings:
        if self.tls is not None and self.url.scheme != "https":
            raise ValueError("'tls' is set but the url is not https://")
        return self


class MqttUplink(Section):
    """Publish each event to the platform's MQTT broker with QoS 1."""

    broker: Identifier = Field(description="Id of a broker in [[brokers]].")
    topic_prefix: str = Field(
        default="township/incidents",
        min_length=1,
        max_length=256,
        description="Events go to '<prefix>/<box_id>/<category>'.",
    )


class UpstreamSettings(Section):
    """Push channels. Each keeps its own durable delivery position."""

    webhook: WebhookSettings | None = Field(default=None, description="HTTP webhook receiver.")
    mqtt: MqttUplink | None = Field(default=None, description="MQTT uplink.")
    nats: NatsUplink | None = Field(default=None, description="NATS JetStream uplink.")
    gb28181: list[Gb28181Settings] = Field(
        default_factory=list, max_length=8, description="County video platforms reached over GB/T 28181."
    )
