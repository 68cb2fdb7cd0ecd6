"""End to end through the daemon: a camera's intrusion reaches the platform as Alarm 5/6 with the
camera's channel id, and alarms raised while the platform does not answer arrive later, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from edge_config import load
from edge_core.signals import Category, Severity, Signal
from gateway.app import Gateway
from gateway.doctor import run_doctor
from tests.conftest import free_port
from tests.integration.gb28181.platform import DEVICE_ID, PLATFORM_ID, FakePlatform

CHANNEL = "51042110301320000007"


def _site(tmp_path: Path, port: int) -> Path:
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "gbpw").write_text("s3cret\n")
    site = tmp_path / "site.toml"
    site.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[site]
box_id = "box-1"
township = "Panlian"
village = "Xinhe"
civil_code = "510421103"
[api]
port = {free_port()}
token = {{ file = "token" }}

[[upstream.gb28181]]
id = "county"
platform_id = "{PLATFORM_ID}"
host = "127.0.0.1"
port = {port}
device_id = "{DEVICE_ID}"
password = {{ file = "gbpw" }}
request_timeout_s = 0.5
max_backoff_s = 1

[[devices]]
kind = "onvif"
id = "cam-gate"
name = "School gate"
host = "127.0.0.1"
port = {free_port()}
national_id = "{CHANNEL}"
location = {{ zone = "gate", latitude = 26.8912, longitude = 102.1187 }}
"""
    )
    return site


@asynccontextmanager
async def running(site: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(load(site))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        async with asyncio.timeout(60):
            while not (gw.ready.is_set() or task.done()):
                await asyncio.sleep(0.05)
        if task.done():
            task.result()
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def _intrusion(zone: str) -> Signal:
    return Signal(
        device="cam-gate",
        rule=f"intrusion-{zone}",
        active=True,
        time=time.time(),
        category=Category.INTRUSION,
        severity=Severity.CRITICAL,
        zone=zone,
        summary=f"person in {zone}",
        detector="vision",
    )


async def test_intrusions_reach_the_platform_in_order_after_an_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = FakePlatform("udp", "s3cret")
    await platform.start()
    site = _site(tmp_path, platform.port)
    try:
        async with running(site) as gw:
            async with asyncio.timeout(10):
                while not platform.accepted:
                    await asyncio.sleep(0.05)
            # /metrics and doctor see the registration.
            scrape = generate_latest(gw.metrics.registry).decode()
            assert 'gateway_gb28181_registered{channel="county"} 1.0' in scrape
            assert 'gateway_gb28181_live_sessions{channel="county"} 0.0' in scrape
            capsys.readouterr()
            await run_doctor(site, unit=tmp_path / "no-unit")
            report = capsys.readouterr().out
            assert f"GB/T 28181 platform county answers at 127.0.0.1:{platform.port}/udp: 200 OK" in report
            assert f"GB/T 28181 county: the gateway is registered as {DEVICE_ID}" in report
            gw.signal(_intrusion("gate"))
            (first,) = await platform.wait_for("Alarm", 1)
            assert first.xml.findtext("DeviceID") == CHANNEL
            assert (first.xml.findtext("AlarmMethod"), first.xml.findtext("Info/AlarmType")) == ("5", "6")
            assert first.xml.findtext("Latitude") == "26.891200"
            # The platform goes quiet: two more intrusions wait in the outbox meanwhile.
            platform.answer_alarms = False
            gw.signal(_intrusion("fence"))
            gw.signal(_intrusion("yard"))
            await platform.wait_for("Alarm", 2)
            await asyncio.sleep(2)
            registers_before = len(platform.accepted)
            platform.answer_alarms = True
            async with asyncio.timeout(20):
                while "person in yard" not in _alarms(platform):
                    await asyncio.sleep(0.05)
            assert len(platform.accepted) > registers_before  # sent again after registering again
            order = _alarms(platform)
            # In order: the yard alarm goes only once the fence alarm (re-sent until answered) is acknowledged.
            assert order.index("person in yard") > max(i for i, d in enumerate(order) if d == "person in fence")
            assert order[0] == "person in gate" and order.count("person in yard") == 1
        assert platform.accepted[-1] == 0  # unregistered on stop
    finally:
        platform.close()


def _alarms(platform: FakePlatform) -> list[str | None]:
    return [m.xml.findtext("AlarmDescription") for m in platform.messages if m.cmd == "Alarm"]
