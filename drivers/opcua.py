"""OPC-UA southbound driver: one asyncua client session per device, its variables as readings.

One ``run`` is one session: connect (with the configured security policy, mode and identity), check
the server's certificate (trust on first use, or a pinned fingerprint), resolve every point
(NodeId or browse path), create one subscription per publishing interval with a monitored item per
point (sampling interval, queue size, absolute deadband), call ``on_connected``, then hand every
data change to the sink until the session is lost. A lost session raises a
:class:`edge_core.errors.DriverError`; the supervisor calls ``run`` again with backoff, and the new
session creates every subscription afresh. asyncua's own reconnect loop stays off, so there is one
place that retries.

With ``alarms = true`` and an ``on_alarm`` callback, the server's Alarms & Conditions events
(AlarmConditionType and subtypes, at the Server object) also arrive, as :class:`OpcUaAlarm`; after
each (re)subscription the driver asks for a ConditionRefresh so alarms already active are sent again.

Files kept in the state directory (``<state_dir>/opcua``):

- ``client/cert.der`` and ``client/key.pem``: the gateway's application instance certificate and its
  key, created on first use and reused after (regenerated only when expired or when the application
  URI changes). Register ``cert.der`` with servers that check client certificates.
- ``trusted/<device id>.der``: a server certificate trusted on first use.

asyncua types and exceptions do not leave this module.

Why this file is long: one session's parts (security, certificate trust, point resolution,
subscriptions, alarms) share the asyncua client and its error translation, which must not leak.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif
from asyncua.crypto import cert_gen, security_policies, uacrypto
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.base import Quality, Reading, ReadingSink
from edge_config.opcua import OpcUaCertificateIdentity, OpcUaDevice, OpcUaPoint, OpcUaUsername
from edge_core.errors import (
    DriverConnectError,
    DriverError,
    DriverProtocolError,
    DriverTimeoutError,
)
from edge_core.tasks import raise_if_cancelled

__all__ = ["AlarmSink", "OpcUaAlarm", "OpcUaDriver", "certificate_fingerprint"]

_logger = logging.getLogger(__name__)
_CLOSE_WHEN_STOPPING_S = 0.5

PRODUCT_URI = "urn:township-edge-gateway"
APPLICATION_NAME = "Township Edge Gateway"
CLIENT_CERT_DAYS = 3650

# Generating the client key pair takes ~0.1 s of CPU; drivers of several devices may start at once
# and share one certificate, so generation is serialised (in a worker thread, off the event loop).
_CERT_LOCK = threading.Lock()

# Status codes meaning the link or the server went away, not that we asked for something wrong.
_CONNECT_STATUS = {
    "BadCommunicationError",
    "BadConnectionClosed",
    "BadConnectionRejected",
    "BadDisconnect",
    "BadNotConnected",
    "BadSecureChannelClosed",
    "BadServerHalted",
    "BadServerNotConnected",
    "BadShutdown",
    "BadTooManySessions",
    "BadTcpServerTooBusy",
}
_TIMEOUT_STATUS = {"BadTimeout", "BadRequestTimeout"}


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate as 64 lower-case hex digits."""
    return hashlib.sha256(der).hexdigest()


def _pretty(fp: str) -> str:
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


def _first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may hold a chain."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    first = der[1]
    if first < 0x80:
        return der[: 2 + first]
    n = first & 0x7F
    length = int.from_bytes(der[2 : 2 + n], "big")
    return der[: 2 + n + length]


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that a power cut leaves either the old content or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def _ensure_client_certificate(directory: Path, application_uri: str) -> tuple[bytes, bytes]:
    """Load, or create on first use, the gateway's certificate. Returns (cert DER, key PEM)."""
    key_path = directory / "key.pem"
    cert_path = directory / "cert.der"
    with _CERT_LOCK:
        key: rsa.RSAPrivateKey
        if key_path.is_file():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{key_path} is not an RSA key")
            key = loaded
            new_key = False
        else:
            key = cert_gen.generate_private_key()
            _write_atomic(key_path, cert_gen.dump_private_key_as_pem(key), 0o600)
            _logger.info("created OPC-UA client key %s", key_path)
            new_key = True
        if cert_path.is_file() and not new_key:
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
            public = cert.public_key()
            same_key = (
                isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == key.public_key().public_numbers()
            )
            if same_key and not uacrypto.check_certificate(cert, application_uri):
                return cert_path.read_bytes(), key_path.read_bytes()
            _logger.warning(
                "OPC-UA client certificate %s is stale (expired, other URI or key); renewing",
                cert_path,
            )
        host = socket.gethostname()
        cert = cert_gen.generate_self_signed_app_certificate(
            key,
            application_uri,
            {"organizationName": APPLICATION_NAME},
            [x509.UniformResourceIdentifier(application_uri), x509.DNSName(host)],
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            days=CLIENT_CERT_DAYS,
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        _write_atomic(cert_path, der)
        _logger.info(
            "created OPC-UA client certificate %s (sha256 %s)",
            cert_path,
            _pretty(certificate_fingerprint(der)),
        )
        return der, key_path.read_bytes()


def _utc_seconds(stamp: dt.datetime | None) -> float | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class _Watched:
    point: OpcUaPoint
    node_id: ua.NodeId


class _Handler:
    """Subscription handler: data changes become readings; a failed subscription ends the session."""

    def __init__(
        self,
        device: OpcUaDevice,
        points: dict[int, OpcUaPoint],
        sink: ReadingSink,
        lose: Callable[[str], None],
    ) -> None:
        self._device = device.id
        self._points = points
        self._sink = sink
        self._lose = lose
        self._warned: set[str] = set()

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        item = data.monitored_item
        point = self._points.get(item.ClientHandle)
        if point is None:
            return
        dv = item.Value
        status = dv.StatusCode if dv is not None and dv.StatusCode is not None else ua.StatusCode()
        if status.is_good():
            quality = Quality.GOOD
        elif status.is_uncertain():
            quality = Quality.UNCERTAIN
        else:
            quality = Quality.BAD
        value = _as_float(val)
        if value is None:
            # No number to give: an empty value (usual with a Bad status) or a non-numeric type.
            quality = Quality.BAD
            value = math.nan
            if val is not None and point.name not in self._warned:
                self._warned.add(point.name)
                _logger.warning(
                    "%s: point %r (%s) has a %s value, not a number; delivered as NaN with bad quality",
                    self._device,
                    point.name,
                    point.address,
                    type(val).__name__,
                )
        stamp = None
        if dv is not None:
            stamp = _utc_seconds(dv.SourceTimestamp) or _utc_seconds(dv.ServerTimestamp)
        self._sink(
            Reading(
                device=self._device,
                point=point.name,
                value=value,
                time=stamp if stamp is not None else dt.datetime.now(dt.UTC).timestamp(),
                unit=point.unit,
                quality=quality,
            )
        )

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        code = status.Status
        if code is None or code.is_good():
            return
        self._lose(f"subscription ended: {code.name}")


@dataclass(frozen=True, slots=True)
class OpcUaAlarm:
    """One Alarms & Conditions event from a device's OPC-UA server.

    A condition's events share ``condition_id``; ``active`` turning False (or ``retain`` False)
    means it cleared. ``severity`` is OPC UA's 1 (lowest) to 1000 (highest).
    """

    device: str
    condition_id: str
    source: str
    condition: str
    message: str
    severity: int
    active: bool | None
    acknowledged: bool | None
    retain: bool | None
    time: float
    event_id: str


AlarmSink = Callable[[OpcUaAlarm], None]
"""Called for every alarm event, on the event loop. It must not block."""

# The event fields read from each alarm (names as asyncua joins a field's browse path).
_ALARM_TYPES = [ObjectIds.AlarmConditionType]


def _text(value: Any) -> str:
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    return "" if value is None else str(value)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class _AlarmHandler:
    """Subscription handler for Alarms & Conditions events."""

    def __init__(self, device: OpcUaDevice, sink: AlarmSink, lose: Callable[[str], None]) -> None:
        self._device = device
        self._sink = sink
        self._lose = lose

    def event_notification(self, event: Any) -> None:
        def field(name: str) -> Any:
            return getattr(event, name, None)

        severity = field("Severity")
        severity = int(severity) if isinstance(severity, int) else 0
        if severity < self._device.alarm_min_severity:
            return
        source = _text(field("SourceName"))
        condition = _text(field("ConditionName"))
        node = field("NodeId")
        if isinstance(node, ua.NodeId) and not node.is_null():
            condition_id = node.to_string()
        else:
            source_node = field("SourceNode")
            where = source_node.to_string() if isinstance(source_node, ua.NodeId) else source
            condition_id = f"{where}/{condition or _text(field('EventType'))}"
        event_id = field("EventId")
        stamp = field("Time")
        self._sink(
            OpcUaAlarm(
                device=self._device.id,
                condition_id=condition_id,
                source=source,
                condition=condition,
                message=_text(field("Message")),
                severity=severity,
                active=_flag(field("ActiveState/Id")),
                acknowledged=_flag(field("AckedState/Id")),
                retain=_flag(field("Retain")),
                time=_utc_seconds(stamp if isinstance(stamp, dt.datetime) else None) or time.time(),
                event_id=event_id.hex() if isinstance(event_id, bytes) else _text(event_id),
            )
        )

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        code = status.Status
        if code is not None and not code.is_good():
            self._lose(f"alarm subscription ended: {code.name}")


class OpcUaDriver:
    """Driver for one OPC-UA device (see the module docstring for what a ``run`` does)."""

    def __init__(
        self,
        device: OpcUaDevice,
        state_dir: Path,
        secrets_base_dir: Path,
        *,
        application_uri: str | None = None,
        on_alarm: AlarmSink | None = None,
    ) -> None:
        """Prepare a driver; nothing is read or connected until ``run``.

        Args:
            device: The device's configuration.
            state_dir: The gateway's writable state directory; certificates live under ``opcua/``.
            secrets_base_dir: Directory that relative secret and certificate paths resolve against
                (the config file's directory).
            application_uri: The client's OPC-UA application URI, also written into its certificate.
                Default: ``urn:township-edge-gateway:<host name>``.
            on_alarm: Where Alarms & Conditions events go when the device has ``alarms = true``.
        """
        self._device = device
        self._dir = Path(state_dir) / "opcua"
        self._secrets_base_dir = Path(secrets_base_dir)
        self._application_uri = application_uri or f"{PRODUCT_URI}:{socket.gethostname()}"
        self._on_alarm = on_alarm
        if device.alarms and on_alarm is None:
            _logger.warning("%s: alarms = true, but nothing receives alarms here; they are not subscribed", device.id)

    @property
    def name(self) -> str:
        """The device id."""
        return self._device.id

    @property
    def client_certificate_path(self) -> Path:
        """Where the gateway's application certificate (DER) is kept."""
        return self._dir / "client" / "cert.der"

    @property
    def trusted_certificate_path(self) -> Path:
        """Where this device's server certificate is kept once trusted on first use."""
        return self._dir / "trusted" / f"{self._device.id}.der"

    def _error(self, cls: type[DriverError], message: str, code: str) -> DriverError:
        return cls(message, device_id=self._device.id, code=code)

    def _translate(self, exc: BaseException, during: str) -> DriverError:
        """Map an asyncua or socket failure to the gateway's errors."""
        if isinstance(exc, DriverError):
            return exc
        where = f"{during} {self._device.endpoint}"
        if isinstance(exc, TimeoutError):
            return self._error(
                DriverTimeoutError,
                f"{where}: no answer within {self._device.timeout_s:g} s",
                "timeout",
            )
        if isinstance(exc, OSError):
            return self._error(DriverConnectError, f"{where}: {exc.strerror or exc}", "unreachable")
        if isinstance(exc, UaStatusCodeError):
            name = ua.StatusCode(exc.code).name
            if name in _TIMEOUT_STATUS:
                return self._error(DriverTimeoutError, f"{where}: {name}", "timeout")
            if name in _CONNECT_STATUS:
                return self._error(DriverConnectError, f"{where}: {name}", "connection_lost")
            return self._error(DriverProtocolError, f"{where}: the server answered {name}", name)
        return self._error(DriverProtocolError, f"{where}: {exc}", "protocol")

    async def run(self, sink: ReadingSink, on_connected: Callable[[], None]) -> None:
        """Run one session: connect, subscribe, deliver readings; raise DriverError when it ends."""
        dev = self._device
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[str] = loop.create_future()
        me = asyncio.current_task()
        base = 0 if me is None else me.cancelling()

        def lose(reason: str) -> None:
            if not lost.done():
                lost.set_result(reason)

        async def on_connection_lost(exc: Exception) -> None:
            lose(f"connection lost: {exc}")

        client = Client(
            dev.endpoint,
            timeout=dev.timeout_s,
            watchdog_intervall=dev.watchdog_s,
            auto_reconnect=False,
        )
        client.application_uri = self._application_uri
        client.product_uri = PRODUCT_URI
        client.name = APPLICATION_NAME
        client.description = f"{APPLICATION_NAME} ({dev.id})"
        client.connection_lost_callback = on_connection_lost
        connected = False
        try:
            try:
                server_der = await self._configure(client)
                await client.connect()
                connected = True
            except (TimeoutError, OSError, UaError) as exc:
                raise self._translate(exc, "connecting to") from exc
            if server_der is not None:
                await self._remember_server(server_der)
            await self._subscribe(client, sink, lose)
            raise_if_cancelled(base)  # a stop that came during asyncua's connect or subscribe
            on_connected()
            reason = await lost
            raise self._error(DriverConnectError, f"{dev.endpoint}: {reason}", "connection_lost")
        finally:
            await self._close(client, connected)

    async def _close(self, client: Client, connected: bool) -> None:
        if not connected:
            client.disconnect_socket()
            return
        # Stopping (the task is being cancelled), a frozen PLC must not take the daemon's whole stop
        # budget waiting to answer a CloseSession: a polite close gets a moment, then the socket goes.
        task = asyncio.current_task()
        stopping = task is not None and task.cancelling() > 0
        timeout = min(self._device.timeout_s, _CLOSE_WHEN_STOPPING_S) if stopping else self._device.timeout_s
        try:
            await asyncio.wait_for(client.disconnect(), timeout=timeout)
        except (TimeoutError, OSError, UaError) as exc:
            _logger.info("%s: disconnect did not finish cleanly: %r", self._device.id, exc)
            client.disconnect_socket()

    # --- security and identity -------------------------------------------------------------

    async def _configure(self, client: Client) -> bytes | None:
        """Set security and identity on ``client``; return the server certificate to remember."""
        dev = self._device
        identity = dev.identity
        need_own_cert = dev.security_policy != "None" or (
            isinstance(identity, OpcUaCertificateIdentity) and identity.certificate is None
        )
        own: tuple[bytes, bytes] | None = None
        if need_own_cert:
            try:
                own = await asyncio.to_thread(_ensure_client_certificate, self._dir / "client", self._application_uri)
            except (OSError, ValueError) as exc:
                raise self._error(
                    DriverProtocolError,
                    f"cannot create or read the client certificate in {self._dir / 'client'}: {exc}",
                    "client_certificate",
                ) from exc

        if isinstance(identity, OpcUaUsername):
            client.set_user(identity.username)
            client.set_password(self._read_secret(identity.password, "password").decode("utf-8"))
        elif isinstance(identity, OpcUaCertificateIdentity):
            await self._load_user_certificate(client, identity, own)

        if dev.security_policy == "None":
            return None
        assert own is not None
        mode = (
            ua.MessageSecurityMode.Sign
            if dev.effective_security_mode == "Sign"
            else ua.MessageSecurityMode.SignAndEncrypt
        )
        policy = security_policies.SecurityPolicyBasic256Sha256
        endpoints = await client.connect_and_get_server_endpoints()
        match = [e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy.URI]
        if not match:
            offered = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
            raise self._error(
                DriverProtocolError,
                f"{dev.endpoint} offers no Basic256Sha256/{dev.effective_security_mode} endpoint "
                f"(it offers: {', '.join(offered) or 'nothing'})",
                "no_endpoint",
            )
        server_der = _first_certificate(match[0].ServerCertificate or b"")
        if not server_der:
            raise self._error(
                DriverProtocolError,
                f"{dev.endpoint} sent no server certificate",
                "server_certificate",
            )
        self._check_server(server_der)
        cert_der, key_pem = own
        await client.set_security(
            policy,
            certificate=cert_der,
            private_key=uacrypto.CertProperties(key_pem, extension="pem"),
            server_certificate=server_der,
            mode=mode,
        )
        return server_der

    def _read_secret(self, ref: Any, what: str) -> bytes:
        try:
            return bytes(ref.read(self._secrets_base_dir).get_secret_value(), "utf-8")
        except OSError as exc:
            raise self._error(DriverProtocolError, f"cannot read the {what}: {exc}", "secret") from exc

    async def _load_user_certificate(
        self, client: Client, identity: OpcUaCertificateIdentity, own: tuple[bytes, bytes] | None
    ) -> None:
        if identity.certificate is None or identity.private_key is None:
            assert own is not None
            cert_bytes, key_bytes = own
        else:
            path = Path(identity.certificate)
            if not path.is_absolute():
                path = self._secrets_base_dir / path
            try:
                cert_bytes = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise self._error(
                    DriverProtocolError, f"cannot read the user certificate {path}: {exc}", "secret"
                ) from exc
            key_bytes = self._read_secret(identity.private_key, "user certificate's private key")
        try:
            pem = cert_bytes.lstrip().startswith(b"-----BEGIN")
            client.user_certificate = await uacrypto.load_certificate(cert_bytes, "pem" if pem else "der")
            client.user_private_key = await uacrypto.load_private_key(key_bytes, extension="pem")
        except ValueError as exc:
            raise self._error(
                DriverProtocolError, f"the user certificate or key is not valid: {exc}", "secret"
            ) from exc

    def _check_server(self, der: bytes) -> None:
        dev = self._device
        offered = certificate_fingerprint(der)
        pinned = dev.pinned_fingerprint
        if pinned is not None:
            if offered != pinned:
                raise self._error(
                    DriverProtocolError,
                    f"server certificate refused: {dev.endpoint} presented sha256 "
                    f"{_pretty(offered)}, "
                    f"but server_certificate_sha256 pins {_pretty(pinned)}",
                    "server_certificate_mismatch",
                )
            return
        path = self.trusted_certificate_path
        try:
            trusted = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(
                DriverProtocolError,
                f"cannot read trusted certificate {path}: {exc}",
                "server_certificate",
            ) from exc
        known = certificate_fingerprint(trusted)
        if known != offered:
            raise self._error(
                DriverProtocolError,
                f"server certificate changed: {dev.endpoint} presented sha256 "
                f"{_pretty(offered)}, but the certificate trusted on first use is "
                f"{_pretty(known)}. If the server's certificate was replaced on purpose, "
                f"delete {path} (or pin the new fingerprint with server_trust = "
                "'pinned') and the gateway will accept it",
                "server_certificate_mismatch",
            )

    async def _remember_server(self, der: bytes) -> None:
        """Trust on first use: store it once a session proved the server holds its key."""
        if self._device.server_trust != "tofu" or self.trusted_certificate_path.exists():
            return
        path = self.trusted_certificate_path
        try:
            await asyncio.to_thread(_write_atomic, path, der)
        except OSError as exc:
            raise self._error(
                DriverProtocolError, f"cannot store trusted certificate {path}: {exc}", "state_dir"
            ) from exc
        _logger.info(
            "%s: trusting server certificate sha256 %s on first use (stored in %s)",
            self._device.id,
            _pretty(certificate_fingerprint(der)),
            path,
        )

    # --- points and subscriptions ----------------------------------------------------------

    async def _resolve(self, client: Client) -> list[_Watched]:
        """NodeIds of the points; one DriverProtocolError names every point not found."""
        dev = self._device
        problems: list[str] = []
        resolved: dict[str, ua.NodeId] = {}
        namespaces: list[str] | None = None
        by_path = [p for p in dev.points if p.browse_path is not None]
        for point in dev.points:
            if point.node_id is None:
                continue
            node_id = ua.NodeId.from_string(point.node_id)
            if isinstance(node_id, ua.ExpandedNodeId) and node_id.NamespaceUri:
                if namespaces is None:
                    namespaces = await client.get_namespace_array()
                if node_id.NamespaceUri not in namespaces:
                    problems.append(
                        f"point {point.name!r} ({point.node_id}): the server has no namespace {node_id.NamespaceUri!r}"
                    )
                    continue
                node_id = ua.NodeId(
                    node_id.Identifier,
                    ua.Int16(namespaces.index(node_id.NamespaceUri)),
                    node_id.NodeIdType,
                )
            resolved[point.name] = node_id
        if by_path:
            objects = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
            results = await client.translate_browsepaths(objects, [p.browse_path for p in by_path if p.browse_path])
            for point, result in zip(by_path, results, strict=True):
                if not result.StatusCode.is_good() or not result.Targets:
                    problems.append(
                        f"point {point.name!r} (browse path {point.browse_path}): "
                        f"{result.StatusCode.name}"
                        + (" (no node has that path)" if result.StatusCode.name == "BadNoMatch" else "")
                    )
                    continue
                target = result.Targets[0].TargetId
                resolved[point.name] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
        if problems:
            raise self._error(DriverProtocolError, "; ".join(problems), "bad_node")
        return [_Watched(p, resolved[p.name]) for p in dev.points]

    async def _subscribe(self, client: Client, sink: ReadingSink, lose: Callable[[str], None]) -> None:
        try:
            watched = await self._resolve(client)
            handles: dict[int, OpcUaPoint] = {}
            handler = _Handler(self._device, handles, sink, lose)
            groups: dict[float, list[tuple[int, _Watched]]] = {}
            for n, w in enumerate(watched, start=1):
                handles[n] = w.point
                groups.setdefault(w.point.publishing_interval_ms, []).append((n, w))
            problems: list[str] = []
            for interval, members in sorted(groups.items()):
                subscription = await client.create_subscription(interval, handler)
                results = await subscription.create_monitored_items([_item_request(h, w) for h, w in members])
                for (_, w), result in zip(members, results, strict=True):
                    if isinstance(result, ua.StatusCode):
                        problems.append(f"point {w.point.name!r} ({w.point.address}): {result.name}")
            if problems:
                raise self._error(DriverProtocolError, "cannot watch " + "; ".join(problems), "bad_node")
            if self._device.alarms and self._on_alarm is not None:
                await self._subscribe_alarms(client, self._on_alarm, lose)
        except (TimeoutError, OSError, UaError) as exc:
            raise self._translate(exc, "subscribing at") from exc

    async def _subscribe_alarms(self, client: Client, sink: AlarmSink, lose: Callable[[str], None]) -> None:
        subscription = await client.create_subscription(500, _AlarmHandler(self._device, sink, lose))
        try:
            await subscription.subscribe_alarms_and_conditions(ObjectIds.Server, _ALARM_TYPES)
        except UaStatusCodeError as exc:
            name = ua.StatusCode(exc.code).name
            raise self._error(
                DriverProtocolError,
                f"the server does not offer Alarms & Conditions events ({name}); set alarms = false",
                "alarms_unsupported",
            ) from exc
        # Ask for the conditions already active (Part 9, ConditionRefresh), so a reconnect does
        # not miss an alarm raised while the session was down. Not every server implements it.
        try:
            await client.get_node(ua.NodeId(ua.Int32(ObjectIds.ConditionType))).call_method(
                ua.NodeId(ua.Int32(ObjectIds.ConditionType_ConditionRefresh)),
                ua.Variant(subscription.subscription_id, ua.VariantType.UInt32),
            )
        except UaStatusCodeError as exc:
            _logger.info(
                "%s: ConditionRefresh not done (%s); active alarms show with their next event",
                self._device.id,
                ua.StatusCode(exc.code).name,
            )


def _item_request(handle: int, watched: _Watched) -> ua.MonitoredItemCreateRequest:
    point = watched.point
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = point.sampling_interval_ms
    params.QueueSize = point.queue_size
    params.DiscardOldest = True
    if point.deadband > 0:
        flt = ua.DataChangeFilter()
        flt.Trigger = ua.DataChangeTrigger.StatusValue
        flt.DeadbandType = ua.DeadbandType.Absolute
        flt.DeadbandValue = point.deadband
        params.Filter = flt
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=watched.node_id, AttributeId=AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request
