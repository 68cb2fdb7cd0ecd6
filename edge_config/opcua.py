"""OPC-UA terminals (southbound): endpoint, security, identity, server trust, points."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edge_config._base import Count, Identifier, Number, SecretRef, Section
from edge_config.site import Location

__all__ = [
    "OpcUaAnonymous",
    "OpcUaCertificateIdentity",
    "OpcUaDevice",
    "OpcUaIdentity",
    "OpcUaPoint",
    "OpcUaUsername",
]

_ENDPOINT = re.compile(r"^opc\.tcp://[^/:\s]+(:[0-9]{1,5})?(/\S*)?$")
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}$")


def _check_node_id(text: str) -> str:
    # asyncua's own parsers, imported here so that a site without OPC-UA devices loads without them.
    from asyncua.ua.uaerrors import UaError
    from asyncua.ua.uatypes import NodeId

    try:
        NodeId.from_string(text)
    except (UaError, ValueError):
        raise ValueError(
            "not a NodeId; write it as 'ns=2;s=PumpHouse.Level', 'ns=3;i=1001', "
            "'nsu=urn:vendor:plc;s=Level' or 'ns=2;g=<guid>'"
        ) from None
    return text


def _check_browse_path(text: str) -> str:
    from asyncua.ua.uaerrors import UaError
    from asyncua.ua.uatypes import RelativePath

    try:
        path = RelativePath.from_string(text)
    except (UaError, ValueError):
        path = None
    if path is None or not path.Elements or any(not el.TargetName or not el.TargetName.Name for el in path.Elements):
        raise ValueError(
            "not a browse path; write it from the Objects folder as '/2:PumpHouse/2:Pump1/2:Flow' "
            "(OPC UA relative path syntax, '<ns index>:<browse name>' per level)"
        )
    return text


class OpcUaPoint(Section):
    """One variable of an OPC-UA server, watched through a subscription."""

    name: Identifier = Field(description="Point name, such as 'level' or 'flow_m3h'.")
    node_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="NodeId of the variable: 'ns=2;s=PumpHouse.Level', 'ns=3;i=1001' or 'nsu=<namespace uri>;s=...'.",
    )
    browse_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Browse path from the Objects folder, such as '/2:PumpHouse/2:Pump1/2:Flow'; "
        "resolved on every connect.",
    )
    unit: str | None = Field(default=None, max_length=32, description="Unit of the value, such as 'm' or 'm3/h'.")
    sampling_interval_ms: Number = Field(
        default=500.0,
        ge=0,
        le=3_600_000,
        description="How often the server samples the variable, in ms (0: as fast as it can).",
    )
    publishing_interval_ms: Number = Field(
        default=1000.0,
        ge=10,
        le=3_600_000,
        description="How often the server sends queued changes, in ms; points with the same "
        "interval share "
        "one subscription.",
    )
    deadband: Number = Field(
        default=0.0,
        ge=0,
        le=1e12,
        description="Absolute deadband: a smaller change is not reported (0: every change).",
    )
    queue_size: Count = Field(
        default=1,
        ge=1,
        le=10_000,
        description="Samples the server keeps between publishes; above 1, fast changes between two "
        "publishes are all delivered instead of only the latest.",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id_syntax(cls, v: str | None) -> str | None:
        return None if v is None else _check_node_id(v)

    @field_validator("browse_path")
    @classmethod
    def _browse_path_syntax(cls, v: str | None) -> str | None:
        return None if v is None else _check_browse_path(v)

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaPoint:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node_id' or 'browse_path'")
        return self

    @property
    def address(self) -> str:
        """The NodeId or browse path as written, for messages."""
        return self.node_id if self.node_id is not None else f"browse path {self.browse_path}"


class OpcUaAnonymous(Section):
    """Log in without a user identity."""

    kind: Literal["anonymous"] = Field(description="Identity kind.")


class OpcUaUsername(Section):
    """Log in with a user name and password."""

    kind: Literal["username"] = Field(description="Identity kind.")
    username: str = Field(min_length=1, max_length=128, description="User name on the OPC-UA server.")
    password: SecretRef = Field(description="Password, from a systemd credential or a file.")


class OpcUaCertificateIdentity(Section):
    """Log in with an X.509 user certificate.

    Without ``certificate`` and ``private_key``, the gateway's own application certificate
    (created in the state directory on first run) is the user identity; register that
    certificate on the server.
    """

    kind: Literal["certificate"] = Field(description="Identity kind.")
    certificate: str | None = Field(
        default=None,
        max_length=4096,
        description="User certificate file (PEM or DER); relative to the config file.",
    )
    private_key: SecretRef | None = Field(default=None, description="The certificate's private key (PEM), as a secret.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> OpcUaCertificateIdentity:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError(
                "give both 'certificate' and 'private_key', or neither to use the gateway's own certificate"
            )
        return self


OpcUaIdentity = Annotated[OpcUaAnonymous | OpcUaUsername | OpcUaCertificateIdentity, Field(discriminator="kind")]


class OpcUaDevice(Section):
    """A terminal or PLC served by an OPC-UA server; its variables become readings."""

    kind: Literal["opcua"] = Field(description="Device kind.")
    id: Identifier = Field(description="Device id; appears in incidents and metrics.")
    name: str | None = Field(default=None, max_length=128, description="Human name shown on the status page.")
    department: str | None = Field(default=None, max_length=64, description="Department its incidents route to.")
    location: Location = Field(default_factory=Location, description="Where the device is.")
    endpoint: str = Field(
        min_length=12,
        max_length=1024,
        description="Server endpoint URL, such as 'opc.tcp://192.168.1.20:4840'.",
    )
    security_policy: Literal["None", "Basic256Sha256"] = Field(
        default="None", description="Security policy of the secure channel."
    )
    security_mode: Literal["Sign", "SignAndEncrypt"] | None = Field(
        default=None,
        description="Message security with Basic256Sha256 (default SignAndEncrypt); not allowed with policy None.",
    )
    identity: OpcUaIdentity = Field(
        default_factory=lambda: OpcUaAnonymous(kind="anonymous"),
        description="User identity: anonymous, username + password, or certificate.",
    )
    server_trust: Literal["tofu", "pinned"] = Field(
        default="tofu",
        description="How the server certificate is trusted: 'tofu' stores it on first connect "
        "and refuses a "
        "different one later; 'pinned' accepts only server_certificate_sha256.",
    )
    server_certificate_sha256: str | None = Field(
        default=None,
        max_length=95,
        description="SHA-256 fingerprint of the server's DER certificate, hex with or without ':' (for 'pinned').",
    )
    timeout_s: Number = Field(default=5.0, ge=0.5, le=120, description="Time allowed for each request to the server.")
    watchdog_s: Number = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="The server's state is read this often; a failed read ends the session and the "
        "device reconnects with backoff.",
    )
    points: list[OpcUaPoint] = Field(min_length=1, max_length=1000, description="Variables to watch.")
    alarms: bool = Field(
        default=False,
        description="Also subscribe to the server's Alarms & Conditions events (AlarmConditionType and "
        "subtypes, at the Server object); each becomes an alarm for the gateway to raise as an incident.",
    )
    alarm_min_severity: Count = Field(
        default=1, ge=1, le=1000, description="Alarms below this OPC UA severity (1 to 1000) are ignored."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, v: str) -> str:
        m = _ENDPOINT.match(v)
        if not m:
            raise ValueError("an endpoint URL looks like 'opc.tcp://192.168.1.20:4840' or 'opc.tcp://plc:4840/path'")
        if m.group(1) and not 1 <= int(m.group(1)[1:]) <= 65535:
            raise ValueError(f"port {m.group(1)[1:]} is out of range: a TCP port is 1 to 65535 (OPC UA's is 4840)")
        return v

    @field_validator("server_certificate_sha256")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is not None and not _FINGERPRINT.match(v):
            raise ValueError("a SHA-256 fingerprint is 64 hex digits, optionally in ':'-separated pairs")
        return v

    @model_validator(mode="after")
    def _security_consistent(self) -> OpcUaDevice:
        if self.security_policy == "None" and self.security_mode is not None:
            raise ValueError("security_mode needs security_policy = 'Basic256Sha256'")
        if self.server_trust == "pinned" and self.security_policy == "None":
            raise ValueError("a pinned server certificate needs security_policy = 'Basic256Sha256' to mean anything")
        if self.server_trust == "pinned" and self.server_certificate_sha256 is None:
            raise ValueError("server_trust = 'pinned' needs server_certificate_sha256")
        if self.server_trust == "tofu" and self.server_certificate_sha256 is not None:
            raise ValueError("server_certificate_sha256 is only used with server_trust = 'pinned'")
        names = [p.name for p in self.points]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"point names must be unique within a device; repeated: {', '.join(dupes)}")
        return self

    @property
    def effective_security_mode(self) -> Literal["None", "Sign", "SignAndEncrypt"]:
        """The message security mode in force."""
        if self.security_policy == "None":
            return "None"
        return self.security_mode or "SignAndEncrypt"

    @property
    def pinned_fingerprint(self) -> str | None:
        """The pinned fingerprint as 64 lower-case hex digits, or None."""
        if self.server_certificate_sha256 is None:
            return None
        return self.server_certificate_sha256.replace(":", "").lower()
