"""End to end through the daemon: a camera's intrusion reaches the platform as Alarm 5/6 with the
camera's channel id; alarms raised while the platform is gone for 60 s arrive later, in order,
each once (the status page, /metrics and doctor saying so meanwhile); a daemon killed with
SIGKILL mid-burst loses no committed alarm; a refused registration is named by doctor.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from edge_core.signals import Category, Severity, Signal
from gateway.app import Gateway
from gateway.demo import device_stanza
from gateway.doctor import run_doctor
from simulators.demo_camera import demo_camera
from tests.conftest import REPO, free_port
from tests.integration.gateway.conftest import running, until
from tests.integration.gb28181.daemon import PASSWORD, TOKEN, gb_site
from tests.integration.gb28181.platform import DEVICE_ID, FakePlatform
from tests.integration.web.browser import browser

CHANNEL = "51042110301320000007"


def _camera(i: int) -> str:
    """A camera whose ONVIF port is dead: it goes offline (Alarm 2/1, video loss) soon after start."""
    return f"""
[[devices]]
kind = "onvif"
id = "cam-{i:02d}"
host = "127.0.0.1"
port = {free_port()}
national_id = "{_channel(i)}"
stream = {{ offline_after_s = 0.5 }}
"""


def _channel(i: int) -> str:
    return f"5104211030132000{i + 100:04d}"


GATE = f"""
[[devices]]
kind = "onvif"
id = "cam-gate"
name = "School gate"
host = "127.0.0.1"
port = {free_port()}
national_id = "{CHANNEL}"
location = {{ zone = "gate", latitude = 26.8912, longitude = 102.1187 }}
stream = {{ offline_after_s = 3600 }}
"""


def _site(tmp_path: Path, port: int, extra: str = "") -> Path:
    """The gate camera (and ``extra`` devices), one channel that registers again after a missed keepalive."""
    return gb_site(tmp_path, {"county": {"port": port, "keepalive_s": 5, "keepalive_misses": 1}}, GATE + extra)


@asynccontextmanager
async def registered(tmp_path: Path, password: str = PASSWORD) -> AsyncIterator[tuple[FakePlatform, Gateway]]:
    """The in-process daemon with a platform whose password is ``password``, once it has answered
    a REGISTER (accepted or refused)."""
    platform = FakePlatform("udp", password)
    await platform.start()
    try:
        async with running(_site(tmp_path, platform.port)) as gw:
            await until(lambda: bool(platform.registers), 10, "a REGISTER")
            yield platform, gw
    finally:
        platform.close()


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


async def _page(gw: Gateway) -> list[dict[str, Any]]:
    """The GB/T 28181 channels as the status page reads them (GET /api/v1/devices)."""
    url = f"http://127.0.0.1:{gw.loaded.config.api.port}/api/v1/devices"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s, s.get(url) as r:
        assert r.status == 200
        return list((await r.json())["gb28181"])


def _alarms(platform: FakePlatform) -> list[str | None]:
    return [m.xml.findtext("AlarmDescription") for m in platform.messages if m.cmd == "Alarm"]


OUTAGE_S = 60.0  # the figure: the uplink pulled for a minute


async def test_intrusions_reach_the_platform_and_wait_out_a_minute_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raised = [f"person in zone {i}" for i in range(5)]
    back = FakePlatform("udp", PASSWORD)  # the platform that comes back
    try:
        async with registered(tmp_path) as (platform, gw):
            channel = gw.gb28181["county"]
            # The platform has had the REGISTER; its 200 OK may still be on its way to the channel.
            await until(lambda: channel.stats.registered, 10, "the REGISTER's 200 OK")
            # /metrics and doctor see the registration.
            scrape = generate_latest(gw.metrics.registry).decode()
            assert 'gateway_gb28181_registered{channel="county"} 1.0' in scrape
            assert 'gateway_gb28181_live_sessions{channel="county"} 0.0' in scrape
            report = await _doctor(gw, capsys)
            assert f"GB/T 28181 platform county answers at 127.0.0.1:{platform.port}/udp: 200 OK" in report
            assert f"GB/T 28181 county: the gateway is registered as {DEVICE_ID}" in report
            # The camera's intrusion reaches the platform as Alarm 5/6 of the camera's channel.
            gw.signal(_intrusion("gate"))
            (first,) = await platform.wait_for("Alarm", 1)
            assert first.xml.findtext("DeviceID") == CHANNEL
            assert (first.xml.findtext("AlarmMethod"), first.xml.findtext("Info/AlarmType")) == ("5", "6")
            assert first.xml.findtext("Latitude") == "26.891200"
            await until(lambda: channel.stats.alarms_sent == 1, 5, "the first alarm's 200 OK")
            # The uplink is pulled: nothing listens at the platform's address for a minute, while
            # intrusions keep being raised through it.
            platform.close()
            t0 = time.monotonic()
            for i in range(len(raised)):
                await asyncio.sleep(max(0.0, t0 + i * OUTAGE_S / len(raised) - time.monotonic()))
                gw.signal(_intrusion(f"zone {i}"))
                if i == 1:
                    await _outage_as_shown(gw, tmp_path, capsys, platform.port)
            await asyncio.sleep(max(0.0, t0 + OUTAGE_S - time.monotonic()))
            assert not channel.stats.registered and channel.stats.alarms_sent == 1
            await back.start(platform.port)
            await until(lambda: [d for d in _alarms(back) if d in raised] == raised, 20, "the alarms raised meanwhile")
            await until(lambda: channel.stats.alarms_sent == 1 + len(raised), 5, "their 200 OKs")
            await asyncio.sleep(1.0)  # room for a duplicate to show up, if one were sent
            # In the order raised, each sent once (one MESSAGE, answered 200 OK: the cursor moves
            # only on a 2xx, and alarms_sent counts those), after registering again.
            assert _alarms(back) == raised
            assert len({m.msg.get("Call-ID") for m in back.messages if m.cmd == "Alarm"}) == len(raised)
            assert back.accepted[0] == 3600
            (now,) = await _page(gw)
            assert (now["alarms_sent"], now["alarms_pending"], now["registered"]) == (6, 0, True)
            assert now["keepalive_misses"] == 0 and now["live_sessions"] == 0
    finally:
        back.close()
    assert back.accepted[-1] == 0  # unregistered on stop


async def _outage_as_shown(gw: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], platform_port: int) -> None:
    """While the platform is gone, with two alarms raised: what the status page (in a real
    browser), /metrics and doctor say."""
    await until(lambda: gw.gb28181["county"].pending.count(1000) == (2, True), 5, "two alarms pending")
    scrape = generate_latest(gw.metrics.registry).decode()
    assert 'gateway_gb28181_alarms_pending{channel="county"} 2.0' in scrape
    assert 'gateway_gb28181_alarms_sent_total{channel="county"} 1.0' in scrape
    (shown,) = await _page(gw)
    assert (shown["id"], shown["alarms_sent"], shown["alarms_pending"], shown["alarms_pending_exact"]) == (
        "county",
        1,
        2,
        True,
    )
    async with browser(tmp_path / "profile") as page:
        await page.goto(f"http://127.0.0.1:{gw.loaded.config.api.port}/#token={TOKEN}")
        await page.wait_for("document.querySelectorAll('#gb tbody tr').length === 1")
        assert not await page.js("document.querySelector('#gb-section').hidden")
        cells = await page.js("[...document.querySelectorAll('#gb tbody td')].map((td) => td.textContent)")
    assert cells[0] == f"county: {DEVICE_ID} to {shown['platform']}"
    assert cells[4] == "1 / 2" and cells[5] == "0"
    report = await _doctor(gw, capsys)
    assert f"GB/T 28181 platform county not reachable at 127.0.0.1:{platform_port}/udp: no answer" in report


async def _doctor(gw: Gateway, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    await run_doctor(gw.loaded.path, unit=gw.loaded.base_dir / "no-unit")
    return capsys.readouterr().out


CAMERAS = 12


def _start(site: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(site)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _committed_alarms(state_dir: Path) -> list[tuple[str, str]]:
    """(channel id, AlarmTime) of every GB/T 28181 alarm the outbox holds, in outbox order: the
    openings of incidents on our channels that carry an alarm type."""
    channels = {f"cam-{i:02d}": _channel(i) for i in range(CAMERAS)}
    out = []
    with sqlite3.connect(state_dir / "outbox.sqlite3") as db:
        for (body,) in db.execute("SELECT body FROM events ORDER BY seq"):
            ev = json.loads(body)
            data = ev["data"]
            device = data.get("place", {}).get("device")
            if ev["type"].endswith(".opened") and device in channels and data["gbt28181"]["alarm_type"] is not None:
                when = datetime.fromisoformat(data["started_at"].replace("Z", "+00:00")).astimezone()
                out.append((channels[device], when.strftime("%Y-%m-%dT%H:%M:%S")))
    return out


def _received(platform: FakePlatform) -> list[tuple[str, str]]:
    return [
        (m.xml.findtext("DeviceID") or "", m.xml.findtext("AlarmTime") or "")
        for m in platform.messages
        if m.cmd == "Alarm"
    ]


async def test_sigkill_mid_burst_loses_no_committed_alarm(tmp_path: Path) -> None:
    # A slow platform (0.2 s an answer) and twelve cameras going offline at once: a burst of
    # Alarm 2/1 that takes seconds to deliver, killed a few alarms in.
    platform = FakePlatform("udp", PASSWORD, alarm_delay_s=0.2)
    await platform.start()
    site = _site(tmp_path, platform.port, "".join(_camera(i) for i in range(CAMERAS)))
    log = tmp_path / "gateway.log"
    proc = _start(site, log)
    try:
        async with asyncio.timeout(60):
            while len(_received(platform)) < 4:
                assert proc.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        before = _received(platform)
        committed = _committed_alarms(tmp_path / "state")
        assert len(committed) > len(before), "the kill came after the burst"
        proc = _start(site, log)
        async with asyncio.timeout(60):
            while not set(committed) <= set(_received(platform)):
                assert proc.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.05)
        after = _received(platform)[len(before) :]
        # Every committed alarm arrived, in outbox order, once over both lives of the daemon, but
        # for those acknowledged just before the kill whose cursor was not yet durable: they come
        # again first after the restart.
        delivered = list(dict.fromkeys(before + after))
        assert [a for a in delivered if a in committed] == committed
        again = [a for a in after if a in before]
        assert again == before[len(before) - len(again) :] == after[: len(again)]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        platform.close()


async def test_a_refused_registration_is_named_by_doctor_and_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with registered(tmp_path, password="another-password") as (platform, gw):
        sup = next(s for s in gw.supervisors if s.name == "upstream:gb28181:county")
        await until(lambda: sup.health.last_error is not None, 10, "the link's last error")
        (page,) = await _page(gw)
        assert not page["registered"] and page["state"] != "connected"
        report = await _doctor(gw, capsys)
    assert f"GB/T 28181 platform county answers at 127.0.0.1:{platform.port}/udp: 200 OK" in report
    line = next(ln for ln in report.splitlines() if "GB/T 28181 county: the gateway is not registered" in ln)
    assert line.startswith("FAIL") and "403" in line and "wrong password" in line


async def test_the_demo_cameras_own_intrusion_reaches_the_platform_as_alarm_5_6(
    tmp_path: Path, scene_clip: Path
) -> None:
    # The whole path: the demo camera's clip through ONVIF, the RTSP ingest and the vision stage
    # to an intrusion, the incident committed to the outbox, then the Alarm on the channel's id.
    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")  # the short clip, not the demo's long scene
    platform = FakePlatform("udp", PASSWORD)
    await platform.start()
    try:
        async with demo_camera(tmp_path, use_gstreamer=False, discovery_port=None) as demo:
            device = demo.device | {
                "national_id": CHANNEL,
                # The short clip's walker crosses the zone in 0.4 s: every frame analysed.
                "stream": demo.device["stream"] | {"analysis_fps": 25.0},
                "location": {"zone": "gate", "latitude": 26.8912, "longitude": 102.1187},
            }
            site = gb_site(tmp_path, {"county": {"port": platform.port}}, device_stanza(device))
            async with running(site):
                (alarm, *_) = await platform.wait_for("Alarm", 1, timeout=30)
    finally:
        platform.close()
    assert alarm.xml.findtext("DeviceID") == CHANNEL
    assert (alarm.xml.findtext("AlarmMethod"), alarm.xml.findtext("Info/AlarmType")) == ("5", "6")
    assert (float(alarm.xml.findtext("Longitude") or "nan"), float(alarm.xml.findtext("Latitude") or "nan")) == (
        102.1187,
        26.8912,
    )
