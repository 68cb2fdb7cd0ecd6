"""MQTT brokers and MQTT terminals (southbound)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge_config._base import Count, HostName, Identifier, Number, SecretRef, Section
from edge_config.site import Location
from edge_config.tls import TlsSettings

__all__ = ["MqttBroker", "MqttDevice", "MqttPoint"]


def _check_filter(topic: str) -> str:
    if "\x00" in topic:
        raise ValueError("a topic may not contain the NUL character (MQTT forbids it)")
    parts = topic.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            raise ValueError("'#' must be a whole last level, as in 'site/#'")
        if "+" in part and part != "+":
            raise ValueError("'+' must be a whole level, as in 'site/+/level'")
    return topic


class MqttBroker(Section):
    """A broker the gateway subscribes to (usually the village's own)."""

    id: Identifier = Field(description="Broker id that devices refer to.")
    host: HostName = Field(description="Broker host name or address.")
    port: Count = Field(default=1883, ge=1, le=65535, description="Broker TCP port (usually 8883 with TLS).")
    tls: TlsSettings | None = Field(
        default=None, description="Connect with TLS ('tls = {}' trusts the system's CAs); none: plain TCP."
    )
    username: str | None = Field(default=None, max_length=128, description="User name, when the broker wants one.")
    password: SecretRef | None = Field(default=None, description="Password, from a credential or file.")
    client_id: str | None = Field(
        default=None, max_length=64, description="MQTT client id; default 'edge-<box_id>-<broker id>'."
    )
    keepalive_s: Count = Field(default=30, ge=5, le=3600, description="MQTT keep-alive interval.")
    qos: Literal[0, 1] = Field(default=1, description="QoS of the subscriptions.")
    max_payload_bytes: Count = Field(
        default=65536,
        ge=16,
        le=16_777_216,
        description="Payloads above this size are counted as malformed and dropped.",
    )


class MqttPoint(Section):
    """One measured quantity of an MQTT terminal and how to read it from a payload."""

    name: Identifier = Field(description="Point name, such as 'level' or 'co_ppm'.")
    topic: str = Field(min_length=1, max_length=512, description="Topic or topic filter ('+' and '#' allowed).")
    value_path: str | None = Field(
        default=None,
        max_length=256,
        description="Dotted path to the value in a JSON payload ('data.level', 'values.0'); "
        "none: the payload is a plain number.",
    )
    time_path: str | None = Field(
        default=None,
        max_length=256,
        description="Dotted path to the source timestamp (epoch seconds or milliseconds, or ISO 8601).",
    )
    unit: str | None = Field(default=None, max_length=32, description="Unit of the value, such as 'm' or 'ppm'.")
    unit_path: str | None = Field(
        default=None, max_length=256, description="Dotted path to a unit sent in the payload."
    )
    scale: Number = Field(default=1.0, ge=-1e12, le=1e12, description="Value multiplier applied after parsing.")
    offset: Number = Field(default=0.0, ge=-1e12, le=1e12, description="Added after scaling.")

    @field_validator("topic")
    @classmethod
    def _topic_filter(cls, v: str) -> str:
        return _check_filter(v)


class MqttDevice(Section):
    """A terminal that publishes readings to an MQTT broker."""

    kind: Literal["mqtt"] = Field(description="Device kind.")
    id: Identifier = Field(description="Device id; appears in incidents and metrics.")
    name: str | None = Field(default=None, max_length=128, description="Human name shown on the status page.")
    broker: Identifier = Field(description="Id of the broker in [[brokers]] this device publishes to.")
    department: str | None = Field(default=None, max_length=64, description="Department its incidents route to.")
    location: Location = Field(default_factory=Location, description="Where the device is.")
    points: list[MqttPoint] = Field(min_length=1, max_length=1000, description="Points the device publishes.")
