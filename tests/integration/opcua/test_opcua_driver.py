"""The OPC-UA driver against a real asyncua server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from opcua_fixtures import (
    PASSWORD,
    SECURE_ONLY,
    USERNAME,
    OnlyUser,
    PumpHouse,
    ServerCert,
    StartRun,
    device,
    free_port,
    make_server_cert,
    start_pumphouse,
)

from drivers.base import Quality, Reading
from drivers.opcua import OpcUaAlarm, OpcUaDriver, certificate_fingerprint
from edge_core.errors import DriverConnectError, DriverProtocolError

# The servers are module-scoped (an asyncua server takes ~1.5 s to start and 1 s to stop), so the
# tests share the module's event loop; each test resets the values it relies on.
pytestmark = pytest.mark.asyncio(loop_scope="module")

Secure = tuple[PumpHouse, ServerCert, OnlyUser]


def _client_tasks() -> list[str]:
    """asyncua client background tasks still alive (supervisor, watchdogs, publish loop)."""
    names = []
    for task in asyncio.all_tasks():
        qualname = getattr(task.get_coro(), "__qualname__", "")
        if qualname.startswith(("Client.", "UaClient.", "UaSession.", "UASocketProtocol.")):
            names.append(qualname)
    return names


def _is(point: str, value: float | None = None) -> Callable[[Reading], bool]:
    def pred(r: Reading) -> bool:
        return r.point == point and (value is None or r.value == value)

    return pred


async def test_readings_arrive_with_device_point_value_unit_and_quality(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    await pumphouse.write(pumphouse.level, 1.5)
    await pumphouse.write(pumphouse.flow, 10.0)
    driver = OpcUaDriver(device(pumphouse.url), state_dir, state_dir)
    run = await start_run(driver)
    await run.wait_connected()

    # Initial values arrive for every point: by NodeId, by nsu= NodeId, by browse path.
    level = await run.sink.wait_for(_is("level"))
    flow = await run.sink.wait_for(_is("flow"))
    await run.sink.wait_for(_is("counter"))
    assert (level.device, level.value, level.unit, level.quality) == (
        "pumphouse-01",
        1.5,
        "m",
        Quality.GOOD,
    )
    assert (flow.value, flow.unit) == (10.0, "m3/h")

    before = time.time()
    await pumphouse.write(pumphouse.level, 2.25)
    await pumphouse.write(pumphouse.flow, 12.5)
    level = await run.sink.wait_for(_is("level", 2.25))
    flow = await run.sink.wait_for(_is("flow", 12.5))
    assert level.quality is Quality.GOOD
    assert before - 1 <= level.time <= time.time() + 1  # the server's source timestamp, in epoch seconds

    # The ticking variable keeps changing, and its readings arrive in order.
    first = await run.sink.wait_for(_is("counter"))
    later = await run.sink.wait_for(lambda r: r.point == "counter" and r.value >= first.value + 3)
    counters = [r.value for r in run.sink.readings if r.point == "counter"]
    assert counters == sorted(counters)
    assert later.value > first.value


async def test_uncertain_and_bad_status_are_kept_as_quality(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    await pumphouse.write(pumphouse.level, 1.5)
    driver = OpcUaDriver(device(pumphouse.url), state_dir, state_dir)
    run = await start_run(driver)
    await run.wait_connected()
    await run.sink.wait_for(_is("level", 1.5))

    await pumphouse.write(pumphouse.level, 3.5, StatusCodes.UncertainLastUsableValue)
    uncertain = await run.sink.wait_for(lambda r: r.point == "level" and r.quality is Quality.UNCERTAIN)
    assert uncertain.value == 3.5

    await pumphouse.write(pumphouse.level, 4.5, StatusCodes.BadSensorFailure)
    bad = await run.sink.wait_for(lambda r: r.point == "level" and r.quality is Quality.BAD)
    # A Bad value is delivered, flagged; when the server sends no value with it, the value is NaN.
    assert bad.value == 4.5 or math.isnan(bad.value)

    await pumphouse.write(pumphouse.level, 1.75)
    good = await run.sink.wait_for(_is("level", 1.75))
    assert good.quality is Quality.GOOD


async def test_non_numeric_variable_is_delivered_as_bad_nan(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    dev = device(pumphouse.url, points=[{"name": "mode", "node_id": "ns=2;s=PumpHouse.Mode"}])
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir))
    await run.wait_connected()
    mode = await run.sink.wait_for(_is("mode"))
    assert mode.quality is Quality.BAD
    assert math.isnan(mode.value)


async def test_deadband_suppresses_small_changes(pumphouse: PumpHouse, start_run: StartRun, state_dir: Path) -> None:
    dev = device(
        pumphouse.url,
        points=[
            {
                "name": "level",
                "node_id": "ns=2;s=PumpHouse.Level",
                "sampling_interval_ms": 10,
                "publishing_interval_ms": 20,
                "deadband": 0.5,
            }
        ],
    )
    await pumphouse.write(pumphouse.level, 1.5)
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir))
    await run.wait_connected()
    await run.sink.wait_for(_is("level", 1.5))
    for v in (1.6, 1.7, 1.8):  # each within 0.5 of the last reported value
        await pumphouse.write(pumphouse.level, v)
        await asyncio.sleep(0.05)
    await pumphouse.write(pumphouse.level, 2.5)
    await run.sink.wait_for(_is("level", 2.5))
    assert [r.value for r in run.sink.readings] == [1.5, 2.5]


async def test_server_restart_raises_then_a_fresh_run_restores_subscriptions(
    start_run: StartRun, state_dir: Path
) -> None:
    port = free_port()
    plc = await start_pumphouse(port)
    driver = OpcUaDriver(device(plc.url), state_dir, state_dir)
    try:
        first = await start_run(driver)
        await first.wait_connected()
        await first.sink.wait_for(_is("level", 1.5))
        assert "UaSession._publish_loop" in _client_tasks()  # the check below can see them
    finally:
        await plc.stop()

    with pytest.raises(DriverConnectError) as err:
        await asyncio.wait_for(first.task, 5)
    assert err.value.device_id == "pumphouse-01"
    assert err.value.code == "connection_lost"
    await asyncio.sleep(0)
    assert _client_tasks() == []  # a failed run leaves no asyncua task behind to pile up over restarts

    # While the server is down, a run fails fast with a connect error (the supervisor backs off).
    down = await start_run(driver)
    with pytest.raises(DriverConnectError) as err:
        await asyncio.wait_for(down.task, 5)
    assert err.value.code == "unreachable"
    assert not down.connected.is_set()
    assert _client_tasks() == []

    plc = await start_pumphouse(port)
    try:
        second = await start_run(driver)
        await second.wait_connected()
        for point in ("level", "flow", "counter"):
            await second.sink.wait_for(_is(point))
        await plc.write(plc.level, 2.75)
        await plc.write(plc.flow, 11.0)
        await second.sink.wait_for(_is("level", 2.75))
        await second.sink.wait_for(_is("flow", 11.0))
        assert not second.task.done()
    finally:
        await plc.stop()


async def test_bad_node_id_and_browse_path_name_device_and_node(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    dev = device(
        pumphouse.url,
        points=[
            {"name": "level", "node_id": "ns=2;s=PumpHouse.Level"},
            {"name": "ghost", "node_id": "ns=2;s=PumpHouse.NoSuchTag"},
            {"name": "lost", "browse_path": "/2:PumpHouse/2:NoSuchChild"},
        ],
    )
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir))
    with pytest.raises(DriverProtocolError) as err:
        await asyncio.wait_for(run.task, 10)
    msg = str(err.value)
    assert err.value.device_id == "pumphouse-01"
    assert err.value.code == "bad_node"
    assert msg.startswith("pumphouse-01: ")
    assert "'lost' (browse path /2:PumpHouse/2:NoSuchChild): BadNoMatch" in msg
    assert not run.connected.is_set()

    # With the browse path fixed, the unknown NodeId is named next.
    points = [p for p in dev.points if p.name != "lost"]
    dev2 = dev.model_copy(update={"points": points})
    run2 = await start_run(OpcUaDriver(dev2, state_dir, state_dir))
    with pytest.raises(DriverProtocolError) as err:
        await asyncio.wait_for(run2.task, 10)
    assert "'ghost' (ns=2;s=PumpHouse.NoSuchTag): BadNodeIdUnknown" in str(err.value)
    assert "'level'" not in str(err.value)


async def test_unknown_namespace_uri_is_named(pumphouse: PumpHouse, start_run: StartRun, state_dir: Path) -> None:
    dev = device(pumphouse.url, points=[{"name": "x", "node_id": "nsu=urn:other:plc;s=Level"}])
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir))
    with pytest.raises(DriverProtocolError, match=r"pumphouse-01: point 'x' .*no namespace 'urn:other:plc'"):
        await asyncio.wait_for(run.task, 10)


async def test_unreachable_endpoint_is_a_connect_error(start_run: StartRun, state_dir: Path) -> None:
    run = await start_run(OpcUaDriver(device(f"opc.tcp://127.0.0.1:{free_port()}"), state_dir, state_dir))
    with pytest.raises(DriverConnectError) as err:
        await asyncio.wait_for(run.task, 5)
    assert err.value.code == "unreachable"
    assert err.value.device_id == "pumphouse-01"


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
async def test_basic256sha256_with_generated_certificates(
    secure_pumphouse: Secure, start_run: StartRun, state_dir: Path, mode: str
) -> None:
    plc, cert, _ = secure_pumphouse
    driver = OpcUaDriver(
        device(plc.url, security_policy="Basic256Sha256", security_mode=mode),
        state_dir,
        state_dir,
    )
    assert not driver.client_certificate_path.exists()
    run = await start_run(driver)
    await run.wait_connected()
    await plc.write(plc.level, 2.5 if mode == "Sign" else 3.25)
    await run.sink.wait_for(_is("level", 2.5 if mode == "Sign" else 3.25))
    await run.sink.wait_for(_is("flow"))
    # The client's own certificate was created in the state directory, the server's was trusted.
    assert driver.client_certificate_path.is_file()
    assert (driver.client_certificate_path.parent / "key.pem").stat().st_mode & 0o077 == 0
    assert driver.trusted_certificate_path.read_bytes() == cert.der


async def test_client_certificate_is_created_once_and_reused(
    secure_pumphouse: Secure, start_run: StartRun, state_dir: Path
) -> None:
    plc, _, _ = secure_pumphouse
    dev = device(plc.url, security_policy="Basic256Sha256")
    first = OpcUaDriver(dev, state_dir, state_dir)
    run = await start_run(first)
    await run.wait_connected()
    created = first.client_certificate_path.read_bytes()
    key = (first.client_certificate_path.parent / "key.pem").read_bytes()
    run.task.cancel()
    await asyncio.gather(run.task, return_exceptions=True)

    # A new driver (as after a daemon restart) finds and uses the same certificate and key.
    again = OpcUaDriver(dev, state_dir, state_dir)
    run2 = await start_run(again)
    await run2.wait_connected()
    await run2.sink.wait_for(_is("level"))
    assert again.client_certificate_path.read_bytes() == created
    assert (again.client_certificate_path.parent / "key.pem").read_bytes() == key


async def test_tofu_stores_server_certificate_and_refuses_a_different_one(
    tmp_path: Path, start_run: StartRun, state_dir: Path
) -> None:
    port = free_port()
    original = make_server_cert(tmp_path / "pki", "plc")
    plc = await start_pumphouse(port, cert=original, policies=SECURE_ONLY)
    dev = device(plc.url, security_policy="Basic256Sha256")
    driver = OpcUaDriver(dev, state_dir, state_dir)
    try:
        run = await start_run(driver)
        await run.wait_connected()
        assert certificate_fingerprint(driver.trusted_certificate_path.read_bytes()) == certificate_fingerprint(
            original.der
        )
    finally:
        await plc.stop()
    await asyncio.gather(run.task, return_exceptions=True)

    impostor = make_server_cert(tmp_path / "pki", "impostor")
    plc = await start_pumphouse(port, cert=impostor, policies=SECURE_ONLY)
    try:
        refused = await start_run(driver)
        with pytest.raises(DriverProtocolError) as err:
            await asyncio.wait_for(refused.task, 10)
        msg = str(err.value)
        assert err.value.code == "server_certificate_mismatch"
        assert "pumphouse-01: server certificate changed" in msg
        assert (
            certificate_fingerprint(impostor.der)[:2].upper() + ":" + certificate_fingerprint(impostor.der)[2:4].upper()
            in msg
        )
        assert str(driver.trusted_certificate_path) in msg
        assert not refused.connected.is_set()
        # The trusted certificate is not overwritten by the refused one.
        assert driver.trusted_certificate_path.read_bytes() == original.der
    finally:
        await plc.stop()


async def test_pinned_fingerprint_accepts_the_pinned_server_only(
    secure_pumphouse: Secure, start_run: StartRun, state_dir: Path
) -> None:
    plc, cert, _ = secure_pumphouse
    fp = certificate_fingerprint(cert.der)
    pinned = device(
        plc.url,
        security_policy="Basic256Sha256",
        server_trust="pinned",
        server_certificate_sha256=":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper(),
    )
    ok = OpcUaDriver(pinned, state_dir, state_dir)
    run = await start_run(ok)
    await run.wait_connected()
    await run.sink.wait_for(_is("level"))
    assert not ok.trusted_certificate_path.exists()  # pinning stores nothing

    wrong = pinned.model_copy(update={"server_certificate_sha256": "00" * 32})
    run2 = await start_run(OpcUaDriver(wrong, state_dir, state_dir))
    with pytest.raises(DriverProtocolError, match="server certificate refused") as err:
        await asyncio.wait_for(run2.task, 10)
    assert err.value.code == "server_certificate_mismatch"
    assert not run2.connected.is_set()


async def test_security_mode_the_server_does_not_offer_is_named(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    # The plain fixture server has no certificate, so it offers only policy None.
    dev = device(pumphouse.url, security_policy="Basic256Sha256", security_mode="Sign")
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir))
    with pytest.raises(
        DriverProtocolError,
        match=r"offers no Basic256Sha256/Sign endpoint \(it offers: None/None_?\)",
    ):
        await asyncio.wait_for(run.task, 10)


async def test_username_and_password_identity(
    secure_pumphouse: Secure, start_run: StartRun, state_dir: Path, tmp_path: Path
) -> None:
    plc, _, _ = secure_pumphouse
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "wrong").write_text("guess\n")
    ident = {"kind": "username", "username": USERNAME, "password": {"file": "pw"}}
    dev = device(plc.url, security_policy="Basic256Sha256", identity=ident)
    run = await start_run(OpcUaDriver(dev, state_dir, tmp_path))
    await run.wait_connected()
    await run.sink.wait_for(_is("level"))

    bad = device(plc.url, security_policy="Basic256Sha256", identity={**ident, "password": {"file": "wrong"}})
    run2 = await start_run(OpcUaDriver(bad, state_dir, tmp_path))
    with pytest.raises(DriverProtocolError) as err:
        await asyncio.wait_for(run2.task, 10)
    assert err.value.device_id == "pumphouse-01"
    assert err.value.code.startswith("Bad")
    assert not run2.connected.is_set()

    missing = device(plc.url, security_policy="Basic256Sha256", identity={**ident, "password": {"file": "nope"}})
    run3 = await start_run(OpcUaDriver(missing, state_dir, tmp_path))
    with pytest.raises(DriverProtocolError, match="cannot read the password") as err:
        await asyncio.wait_for(run3.task, 10)
    assert err.value.code == "secret"


async def test_certificate_identity_presents_the_user_certificate(
    secure_pumphouse: Secure, start_run: StartRun, state_dir: Path, tmp_path: Path
) -> None:
    plc, _, users = secure_pumphouse
    user = make_server_cert(tmp_path / "user", "technician", user=True)
    ident = {"kind": "certificate", "certificate": user.cert.name, "private_key": {"file": user.key.name}}
    dev = device(plc.url, security_policy="Basic256Sha256", identity=ident)
    driver = OpcUaDriver(dev, state_dir, user.cert.parent)
    run = await start_run(driver)
    await run.wait_connected()
    await run.sink.wait_for(_is("level"))
    # The server verified the X.509 identity token: the certificate it saw is the user's (DER),
    # not the client's application certificate.
    user_der = x509.load_pem_x509_certificate(user.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert users.certificates[-1] == user_der
    assert users.certificates[-1] != driver.client_certificate_path.read_bytes()


async def test_alarms_and_conditions_events_become_alarms(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    server = pumphouse.server
    pump = await server.nodes.objects.add_object(pumphouse.ns, "Pump1")
    gen = await server.get_event_generator(ObjectIds.AlarmConditionType)
    gen.event.SourceNode = pump.nodeid
    gen.event.SourceName = "Pump1"
    gen.event.ConditionName = "MotorOvercurrent"

    alarms: list[OpcUaAlarm] = []
    arrived = asyncio.Event()

    def on_alarm(alarm: OpcUaAlarm) -> None:
        alarms.append(alarm)
        arrived.set()

    dev = device(pumphouse.url, alarms=True, alarm_min_severity=500)
    run = await start_run(OpcUaDriver(dev, state_dir, state_dir, on_alarm=on_alarm))
    await run.wait_connected()

    async def fire(severity: int, active: bool, message: str) -> None:
        gen.event.Severity = severity
        setattr(gen.event, "ActiveState/Id", active)
        setattr(gen.event, "AckedState/Id", False)
        gen.event.Retain = active
        await gen.trigger(message=message)

    await fire(100, True, "minor vibration")  # below alarm_min_severity: ignored
    await fire(800, True, "Pump 1 motor overcurrent")
    await asyncio.wait_for(arrived.wait(), 5)
    raised = alarms[-1]
    assert (raised.device, raised.source, raised.condition) == ("pumphouse-01", "Pump1", "MotorOvercurrent")
    assert (raised.message, raised.severity, raised.active, raised.acknowledged, raised.retain) == (
        "Pump 1 motor overcurrent",
        800,
        True,
        False,
        True,
    )
    assert abs(raised.time - time.time()) < 5
    assert len(raised.event_id) > 0

    arrived.clear()
    await fire(800, False, "Pump 1 motor current normal")
    await asyncio.wait_for(arrived.wait(), 5)
    cleared = alarms[-1]
    assert cleared.active is False
    assert cleared.condition_id == raised.condition_id  # the same condition: one incident, updated
    assert [a.severity for a in alarms] == [800, 800]
    # Readings still flow beside the alarms.
    await run.sink.wait_for(_is("counter"))
