"""The county video platform, reached over GB/T 28181 as its lower-level platform (下级平台)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_config._base import Count, HostName, Identifier, Number, SecretRef, Section

__all__ = ["NATIONAL_ID", "Gb28181Settings", "NationalId", "type_code"]

NATIONAL_ID = r"^[0-9]{20}$"

NationalId = Annotated[
    str,
    Field(
        pattern=NATIONAL_ID,
        description="20-digit GB/T 28181 id: civil code (1-8), industry (9-10), type (11-13), network (14), serial.",
    ),
]


def type_code(national_id: str) -> str:
    """Digits 11 to 13 of a 20-digit id: what kind of thing it names (132 IP camera, 200 platform)."""
    return national_id[10:13]


class Gb28181Settings(Section):
    """Join the county's video platform: register, keep alive, answer its queries, send alarms.

    The box appears as one lower-level platform whose channels are the cameras that have a
    ``national_id`` (type code 132).
    """

    id: Identifier = Field(description="Name of this channel in logs, metrics and the status page.")
    platform_id: NationalId = Field(description="The platform's 20-digit SIP server id (type code 200).")
    realm: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z.-]+$",
        description="SIP domain (realm) of the platform; default: the first 10 digits of platform_id.",
    )
    host: HostName = Field(description="Address of the platform's SIP server.")
    port: Count = Field(default=5060, ge=1, le=65535, description="SIP port of the platform.")
    transport: Literal["udp", "tcp"] = Field(default="udp", description="SIP transport: udp or tcp.")
    local_port: Count = Field(
        default=0, ge=0, le=65535, description="Our SIP port; 0 picks a free one (the platform answers the source)."
    )
    device_id: NationalId = Field(description="This box's own 20-digit id, as the platform registered it.")
    username: str | None = Field(
        default=None, min_length=1, max_length=64, description="Digest user name; default: device_id."
    )
    password: SecretRef = Field(description="Registration password (digest secret), from a credential or file.")
    register_expires_s: Count = Field(
        default=3600, ge=60, le=86_400, description="Registration lifetime asked for; refreshed at 80 % of it."
    )
    keepalive_s: Count = Field(default=60, ge=5, le=3600, description="Interval of the Keepalive MESSAGE.")
    keepalive_misses: Count = Field(
        default=3, ge=1, le=20, description="Unanswered keepalives in a row after which the box registers again."
    )
    charset: Literal["GB2312", "GB18030", "UTF-8"] = Field(
        default="GB2312",
        description="Charset of the XML bodies (the platform decodes with its own per-device setting).",
    )
    version: Literal["2016", "2022"] = Field(
        default="2016", description="Edition of GB/T 28181 the platform speaks (2022 adds the X-GB-Ver header 3.0)."
    )
    request_timeout_s: Number = Field(
        default=8.0, ge=0.5, le=64, description="How long a request waits for its final answer (UDP retransmits)."
    )
    max_backoff_s: Number = Field(
        default=120.0, ge=1, le=3600, description="Longest wait between registration attempts on a dead platform."
    )
    catalog_page: Count = Field(
        default=20, ge=1, le=100, description="Catalog items per response MESSAGE (large catalogs are paged)."
    )
    max_live_sessions: Count = Field(
        default=8, ge=0, le=64, description="Live video sessions at once (INVITEs beyond get 486 Busy Here)."
    )
    clock_skew_warn_s: Number = Field(
        default=10.0, ge=1, le=86_400, description="Warn when the platform's Date differs from our clock by more."
    )

    @model_validator(mode="after")
    def _distinct_ids(self) -> Gb28181Settings:
        if self.device_id == self.platform_id:
            raise ValueError("device_id and platform_id must differ: one names this box, the other the platform")
        return self

    @property
    def domain(self) -> str:
        """The SIP domain: ``realm`` when set, else the first 10 digits of the platform's id."""
        return self.realm or self.platform_id[:10]
