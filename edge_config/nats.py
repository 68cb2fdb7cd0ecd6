"""The NATS JetStream uplink: a county's cluster of NATS servers, with a stream the platform owns."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge_config._base import Number, SecretRef, Section
from edge_config.tls import TlsSettings

__all__ = ["NatsUplink", "subject_token"]

# A subject token: no '.', no wildcard, no whitespace. Letters beyond ASCII would be legal to the
# server, but every NATS tool and ACL file a county integrator writes by hand handles ASCII best.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def subject_token(text: str) -> str | None:
    """``text`` when it can stand as one subject token, else None."""
    return text if _TOKEN.match(text) else None


class NatsUplink(Section):
    """Publish each event to a NATS JetStream stream, waiting for the stream's acknowledgement.

    The subject is '<subject_prefix>.<township>.<box_id>.<category>'; the CloudEvent id goes in the
    Nats-Msg-Id header, so a retry after a lost acknowledgement is dropped by the stream's
    de-duplication. The stream itself (and the presence bucket) belong to the platform: the box
    only publishes.
    """

    servers: list[str] = Field(
        min_length=1,
        max_length=32,
        description="Seed servers, 'nats://host:port' or 'tls://host:port'; the rest of the cluster is "
        "learnt from them.",
    )
    subject_prefix: str = Field(
        default="township",
        min_length=1,
        max_length=128,
        description="First token(s) of every subject, such as 'miyi.incidents'.",
    )
    township: str | None = Field(
        default=None,
        max_length=64,
        description="Subject token for the township (ASCII letters, digits, '_', '-'), such as 'panlian'; "
        "default: [site] township, when it is such a token.",
    )
    stream: str = Field(
        default="INCIDENTS",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Stream that must acknowledge the events; an ack from any other stream is an error.",
    )
    user: str | None = Field(default=None, max_length=128, description="User name (with 'password').")
    password: SecretRef | None = Field(default=None, description="Password of 'user', from a credential or file.")
    nkey_seed: SecretRef | None = Field(
        default=None, description="NKey seed ('SU...'), from a credential or file; instead of user and password."
    )
    tls: TlsSettings | None = Field(
        default=None, description="Trust and client certificate for tls:// servers; none: the system's CAs."
    )
    ack_timeout_s: Number = Field(
        default=5.0, ge=0.1, le=120, description="How long one publish waits for the stream's acknowledgement."
    )
    max_backoff_s: Number = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Longest wait between reconnects (full jitter over half to all of it, so that a "
        "county-wide restart does not bring every box back in the same second).",
    )
    presence_bucket: str | None = Field(
        default="presence",
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Key-value bucket where the box keeps '<township>.<box_id>' online or offline; none: no presence.",
    )
    heartbeat_s: Number = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How often the presence record is refreshed; a record older than three of these means "
        "the box went dark without saying so.",
    )

    @field_validator("servers")
    @classmethod
    def _server_urls(cls, servers: list[str]) -> list[str]:
        for s in servers:
            u = urlsplit(s)
            if u.scheme not in ("nats", "tls") or not u.hostname or u.path not in ("", "/"):
                raise ValueError(f"{s!r}: write a server as nats://host:port or tls://host:port")
            if u.username or u.password:
                raise ValueError(f"{s!r}: credentials never sit in a server URL: use 'user' and 'password'")
        return servers

    @field_validator("subject_prefix")
    @classmethod
    def _prefix_tokens(cls, prefix: str) -> str:
        if not _PREFIX.match(prefix):
            raise ValueError("write dot-separated tokens of ASCII letters, digits, '_' and '-' (no '*' or '>')")
        return prefix

    @field_validator("township")
    @classmethod
    def _township_token(cls, township: str | None) -> str | None:
        if township is not None and subject_token(township) is None:
            raise ValueError("one subject token: ASCII letters, digits, '_' and '-'")
        return township

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> NatsUplink:
        if self.password is not None and self.user is None:
            raise ValueError("'password' needs 'user'")
        if self.nkey_seed is not None and self.user is not None:
            raise ValueError("give 'nkey_seed' or 'user' and 'password', not both")
        if self.tls is not None and not any(s.startswith("tls://") for s in self.servers):
            raise ValueError("'tls' is set but no server is tls://")
        return self
