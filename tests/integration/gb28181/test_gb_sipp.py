"""SIPp (Debian's sip-tester) plays the county platform over UDP and TCP on 127.0.0.1.

The scenario (sipp/platform.xml) challenges and accepts the REGISTER, sends Catalog, DeviceInfo,
DeviceStatus, an unknown channel's query and an unsupported method, and accepts every MESSAGE the
device sends; SIPp's exit code says whether every step matched. Its message log then shows what
the device answered, which is checked here. What SIPp cannot check (the digest's value) the
in-suite platform checks (test_gb_channel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import re
import shutil
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from edge_config.gb28181 import Gb28181Settings
from edge_core.errors import DriverError
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.live import AccessUnit
from gateway.gb28181.mapping import GbCamera
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from tests.conftest import free_port
from tests.unit.gb28181.h264 import Frames, clip

HERE = Path(__file__).parent / "sipp"
DEVICE_ID = "51042110302000000002"
PLATFORM_ID = "51042110302000000001"
CAMERAS = [GbCamera(f"cam-{i}", f"510421103013200{i:05d}", f"摄像头{i}", "510421103", 102.1, 26.9) for i in range(3)]
# Calls SIPp sees before it exits: the REGISTER dialog, two catalog pages, DeviceInfo and
# DeviceStatus responses, one alarm, and two keepalives (at 5 s and 10 s).
CALLS = 8

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed (Debian package sip-tester)"),
]


def _event(device: str) -> bytes:
    data = {
        "category": "intrusion",
        "severity": "critical",
        "summary": "person in the school gate zone",
        "started_at": "2026-12-06T02:20:30.000Z",
        "place": {"device": device, "longitude": 102.1, "latitude": 26.9},
        "gbt28181": {"alarm_method": 5, "alarm_type": 6},
    }
    return json.dumps({"type": "township.edge.incident.opened", "data": data}).encode()


def _same(body: bytes, _seq: int) -> bytes:
    return body


async def _wait_listening(port: int, proto: str) -> None:
    if proto == "udp":
        await asyncio.sleep(0.5)  # nothing to probe; the REGISTER is retransmitted anyway
        return
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
            await asyncio.sleep(0.05)


@dataclass
class Sipp:
    """What SIPp said: its exit code, and its message log (what it sent and received)."""

    rc: int | None = None
    log: str = ""


@contextlib.asynccontextmanager
async def sipp_platform(
    scenario: str, ids: Path, proto: str, tmp_path: Path, outbox: Outbox, calls: int, timeout_s: int, **channel: Any
) -> AsyncIterator[tuple[Sipp, Gb28181Channel]]:
    """SIPp playing ``scenario`` as the platform, and the channel registering with it; the block
    runs once SIPp has exited by itself (or timed out), with its verdict checked."""
    port = free_port()
    log, errors = tmp_path / "messages.log", tmp_path / "errors.log"
    args = [
        "-sf", str(HERE / scenario),
        "-inf", str(ids),
        "-i", "127.0.0.1",
        "-p", str(port),
        "-t", "u1" if proto == "udp" else "t1",
        "-m", str(calls),
        "-nostdin",
        "-timeout", f"{timeout_s}s",
        "-timeout_error",
        "-trace_msg", "-message_file", str(log),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            "sipp", *args, stdout=asyncio.subprocess.DEVNULL, stderr=stderr, cwd=tmp_path
        )
    task = None
    try:
        await _wait_listening(port, proto)
        cfg = Gb28181Settings.model_validate(
            {
                "id": "county",
                "platform_id": PLATFORM_ID,
                "realm": "5104211030",
                "host": "127.0.0.1",
                "port": port,
                "transport": proto,
                "device_id": DEVICE_ID,
                "password": {"file": "pw"},
                **channel.pop("settings", {}),
            }
        )
        ch = Gb28181Channel(
            cfg,
            password="12345678",
            outbox=outbox,
            metrics=Metrics(),
            cameras=CAMERAS,
            box_name="Xinhe box",
            firmware="1.0",
            **channel,
        )
        task = asyncio.create_task(ch.run(lambda: None))
        result = Sipp(await asyncio.wait_for(proc.wait(), timeout_s + 5))
        result.log = log.read_text(errors="replace") if log.exists() else ""
        why = "".join(f.read_text(errors="replace") for f in (errors, tmp_path / "stderr.txt") if f.exists())
        assert result.rc == 0, f"SIPp exit {result.rc}: {why[-3000:]}\n{result.log[-3000:]}"
        # Still up, or (TCP) ended only because SIPp closed the connection on its way out.
        assert not task.done() or "connection lost" in str(task.exception())
        yield result, ch
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, DriverError):
                await task


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_sipp_platform_registers_queries_takes_alarms_and_keepalives(
    proto: str, tmp_path: Path, outbox: Outbox
) -> None:
    writer = asyncio.create_task(outbox.run())
    try:
        outbox.append(source="s", severity=3, build=functools.partial(_same, _event("cam-1")))
        await outbox.flush()
        setup = {"settings": {"keepalive_s": 5, "catalog_page": 2}, "camera_online": lambda dev: dev != "cam-0"}
        platform = sipp_platform("platform.xml", HERE / "ids.csv", proto, tmp_path, outbox, CALLS, 40, **setup)
        async with platform as (sipp, ch):
            assert outbox.cursor(ch.consumer) == 1  # the alarm was acknowledged
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    bodies = _bodies(sipp.log)
    catalog = [b for b in bodies if "<CmdType>Catalog</CmdType>" in b and "<Response>" in b]
    assert len(catalog) == 2
    assert all("<SN>101</SN>" in b and "<SumNum>3</SumNum>" in b for b in catalog)
    assert [re.findall(r'Num="(\d+)"', b) for b in catalog] == [["2"], ["1"]]
    items = re.findall(r"<DeviceID>(\d{20})</DeviceID>\s*<Name>", "".join(catalog))
    assert items == [c.channel_id for c in CAMERAS]
    info = _one(bodies, "DeviceInfo")
    assert "<SN>102</SN>" in info and "<Result>OK</Result>" in info
    status = _one(bodies, "DeviceStatus")
    assert "<SN>103</SN>" in status and "<Online>OFFLINE</Online>" in status  # cam-0 is not streaming
    alarm = _one(bodies, "Alarm")
    assert f"<DeviceID>{CAMERAS[1].channel_id}</DeviceID>" in alarm
    assert "<AlarmMethod>5</AlarmMethod>" in alarm and "<AlarmType>6</AlarmType>" in alarm
    assert "<AlarmPriority>1</AlarmPriority>" in alarm
    keepalives = [b for b in bodies if "<CmdType>Keepalive</CmdType>" in b]
    assert len(keepalives) == 2 and all("<Status>OK</Status>" in b for b in keepalives)


def _bodies(log: str) -> list[str]:
    """The XML bodies of the MESSAGEs SIPp received, as its message log shows them."""
    out = []
    for block in re.split(r"-{20,}", log):
        if "message received" in block and re.search(r"^MESSAGE sip:", block, re.MULTILINE):
            out += re.findall(r"<\?xml[^>]*\?>.*?</(?:Response|Notify)>", block, re.DOTALL)
    return out


def _one(bodies: list[str], cmd: str) -> str:
    found = [b for b in bodies if f"<CmdType>{cmd}</CmdType>" in b]
    assert len(found) == 1, found
    return found[0]


async def _loop_clip(_device: str) -> AsyncIterator[AccessUnit]:
    aus = clip()
    for i in range(10_000):
        au, key = aus[i % len(aus)]
        yield AccessUnit(au, i * 3600, key)
        await asyncio.sleep(0.04)


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.append(data)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_sipp_platform_invites_live_video_and_byes(proto: str, tmp_path: Path, outbox: Outbox) -> None:
    loop = asyncio.get_running_loop()
    rtp_t, rtp = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    rtp_port = rtp_t.get_extra_info("sockname")[1]
    ids = tmp_path / "ids.csv"
    ids.write_text(f"SEQUENTIAL\n{DEVICE_ID};{CAMERAS[0].channel_id};51042110301329999999;{rtp_port};\n")
    video = {"camera_online": lambda _dev: True, "video": Frames(_loop_clip)}
    try:
        async with sipp_platform("live.xml", ids, proto, tmp_path, outbox, 1, 30, **video) as (_sipp, ch):
            assert ch.live_sessions == 0  # SIPp's BYE ended it
            n = len(rtp.packets)
            await asyncio.sleep(0.3)
            assert len(rtp.packets) == n  # and nothing is sent after it
    finally:
        rtp_t.close()
    # About two seconds of 25 fps video, from the SSRC the platform's y= line named.
    assert {struct.unpack(">I", p[8:12])[0] for p in rtp.packets} == {100000001}
    ps = b"".join(p[12:] for p in sorted(rtp.packets, key=lambda p: struct.unpack(">H", p[2:4])[0]))
    with av.open(io.BytesIO(ps), mode="r", format="mpeg") as c:
        frames = sum(len(p.decode()) for p in c.demux(video=0))
    assert 20 <= frames <= 80
