"""Test helpers: a real asyncua server on 127.0.0.1, in-process; its pump house variables change."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.base import Reading
from drivers.opcua import OpcUaDriver
from edge_config.opcua import OpcUaDevice

NAMESPACE = "urn:township-edge:test:pumphouse"
TICK_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerCert:
    cert: Path
    key: Path

    @property
    def der(self) -> bytes:
        return self.cert.read_bytes()


def make_server_cert(directory: Path, name: str = "plc", *, user: bool = False) -> ServerCert:
    """A self-signed server application certificate, as a PLC vendor would ship (or, with
    ``user``, a user's X.509 identity certificate in PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    uri = f"urn:township-edge:test:{name}"
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        uri,
        {"organizationName": "Test PLC"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("127.0.0.1")],
        [ExtendedKeyUsageOID.CLIENT_AUTH if user else ExtendedKeyUsageOID.SERVER_AUTH],
        days=30,
    )
    paths = ServerCert(directory / f"{name}-cert.{'pem' if user else 'der'}", directory / f"{name}-key.pem")
    encoding = serialization.Encoding.PEM if user else serialization.Encoding.DER
    paths.cert.write_bytes(cert.public_bytes(encoding))
    paths.key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return paths


class OnlyUser(UserManager):
    """Accepts anonymous and certificate users and one user name with its password; refuses other
    users. Remembers the certificate each accepted session presented (the user certificate for an
    X.509 identity, else the client's application certificate)."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self.certificates: list[bytes] = []  # the certificate each accepted session presented

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None or (username == self._username and password == self._password):
            if certificate is not None:
                self.certificates.append(bytes(certificate))
            return User(role=UserRole.User)
        return None


@dataclass
class PumpHouse:
    """A running server: ``level`` has a NodeId, ``flow`` a browse path, ``counter`` ticks."""

    server: Server
    url: str
    port: int
    ns: int
    level: Node
    flow: Node
    counter: Node
    text: Node
    _ticker: asyncio.Task[None] | None = None

    async def write(self, node: Node, value: float, status: int = StatusCodes.Good) -> None:
        dv = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=ua.DateTime.now(dt.UTC),
        )
        await node.write_value(dv)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.server.stop()


async def start_pumphouse(
    port: int,
    *,
    cert: ServerCert | None = None,
    policies: list[ua.SecurityPolicyType] | None = None,
    user_manager: UserManager | None = None,
) -> PumpHouse:
    server = Server(user_manager=user_manager)
    await server.init()
    url = f"opc.tcp://127.0.0.1:{port}/pumphouse"
    server.set_endpoint(url)
    server.set_server_name("Test pump house")
    if cert is not None:
        await server.set_application_uri(f"urn:township-edge:test:{cert.cert.stem.removesuffix('-cert')}")
        await server.load_certificate(str(cert.cert))
        await server.load_private_key(str(cert.key))
    if policies is not None:
        server.set_security_policy(policies)
    if user_manager is not None:
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken, ua.X509IdentityToken])
    ns = await server.register_namespace(NAMESPACE)
    house = await server.nodes.objects.add_object(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse"), ua.QualifiedName("PumpHouse", ns)
    )
    level = await house.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse.Level"), ua.QualifiedName("Level", ns), 1.5
    )
    flow = await house.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse.Flow"), ua.QualifiedName("Flow", ns), 10.0
    )
    counter = await house.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse.Counter"), ua.QualifiedName("Counter", ns), 0.0
    )
    text = await house.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse.Mode"), ua.QualifiedName("Mode", ns), "auto"
    )
    await server.start()
    plc = PumpHouse(server, url, port, ns, level, flow, counter, text)

    async def tick() -> None:
        n = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            n += 1.0
            await counter.write_value(n)

    plc._ticker = asyncio.create_task(tick(), name="test.pumphouse.tick")
    return plc


SECURE_ONLY = [
    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Basic256Sha256_Sign,
]
USERNAME, PASSWORD = "operator", "s3cret"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pumphouse() -> AsyncIterator[PumpHouse]:
    """A server with security policy None only, shared by a module's tests (they reset values)."""
    plc = await start_pumphouse(free_port())
    try:
        yield plc
    finally:
        await plc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_pumphouse(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[PumpHouse, ServerCert, OnlyUser]]:
    """A server offering only Basic256Sha256 (Sign, SignAndEncrypt), with a generated certificate;
    it accepts anonymous and certificate users and the user ``operator`` with password ``s3cret``."""
    cert = make_server_cert(tmp_path_factory.mktemp("pki"))
    users = OnlyUser(USERNAME, PASSWORD)
    plc = await start_pumphouse(free_port(), cert=cert, policies=SECURE_ONLY, user_manager=users)
    try:
        yield plc, cert, users
    finally:
        await plc.stop()


@dataclass
class Collector:
    """A sink that remembers readings and lets a test wait for one."""

    readings: list[Reading] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)
        self._changed.set()

    async def wait_for(self, pred: Callable[[Reading], bool], within_s: float = 5.0) -> Reading:
        async def scan() -> Reading:
            seen = 0
            while True:
                for r in self.readings[seen:]:
                    if pred(r):
                        return r
                seen = len(self.readings)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), within_s)


@dataclass
class Running:
    """A driver's ``run`` in a task, with its readings and a connected event."""

    task: asyncio.Task[None]
    sink: Collector
    connected: asyncio.Event

    async def wait_connected(self, within_s: float = 10.0) -> None:
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(self.connected.wait()), self.task],
            timeout=within_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self.task in done:
            self.task.result()  # raises the driver's error
            raise AssertionError("run returned without connecting")
        assert self.connected.is_set(), "driver did not connect in time"


StartRun = Callable[[OpcUaDriver], Awaitable[Running]]


@pytest_asyncio.fixture(loop_scope="module")
async def start_run() -> AsyncIterator[StartRun]:
    """Start ``driver.run`` in a task; each is cancelled and awaited when the test ends."""
    tasks: list[asyncio.Task[None]] = []

    async def start(driver: OpcUaDriver) -> Running:
        sink = Collector()
        connected = asyncio.Event()
        task = asyncio.create_task(driver.run(sink, connected.set), name=f"gw[{driver.name}].run")
        tasks.append(task)
        return Running(task, sink, connected)

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def device(url: str, **kw: Any) -> OpcUaDevice:
    """An OPC-UA device on the test pump house; ``points`` may be overridden."""
    data: dict[str, Any] = {
        "kind": "opcua",
        "id": "pumphouse-01",
        "endpoint": url,
        "timeout_s": 2.0,
        "watchdog_s": 0.2,
        "points": [
            {
                "name": "level",
                "node_id": "ns=2;s=PumpHouse.Level",
                "unit": "m",
                "sampling_interval_ms": 20,
                "publishing_interval_ms": 20,
                "queue_size": 10,
            },
            {
                "name": "flow",
                "browse_path": "/2:PumpHouse/2:Flow",
                "unit": "m3/h",
                "sampling_interval_ms": 20,
                "publishing_interval_ms": 50,
            },
            {
                "name": "counter",
                "node_id": f"nsu={NAMESPACE};s=PumpHouse.Counter",
                "sampling_interval_ms": 20,
                "publishing_interval_ms": 50,
            },
        ],
    }
    data.update(kw)
    return OpcUaDevice.model_validate(data)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path
