"""Live video: INVITE with an SDP offer, our answer, RTP/PS to the platform over UDP and TCP, BYE
either way. What arrives is demuxed and decoded by libavformat's MPEG-PS demuxer (PyAV)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest

from edge_config.gb28181 import Gb28181Settings
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.live import AccessUnit
from gateway.gb28181.mapping import GbCamera
from gateway.gb28181.sip import SipMessage
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from tests.integration.gb28181.platform import DEVICE_ID, PLATFORM_ID, FakePlatform
from tests.unit.gb28181.h264 import Frames, clip

PASSWORD = "12345678"
CAM = GbCamera("cam-1", "51042110301320000001", "gate", "510421103")
SSRC = 1100000001


async def finite(_device: str) -> AsyncIterator[AccessUnit]:
    for i, (au, key) in enumerate(clip()):
        yield AccessUnit(au, 90_000 + i * 3600, key)
        await asyncio.sleep(0.005)


async def endless(_device: str) -> AsyncIterator[AccessUnit]:
    aus = clip()
    i = 0
    while True:
        au, key = aus[i % len(aus)]
        yield AccessUnit(au, i * 3600, key)
        i += 1
        await asyncio.sleep(0.01)


def channel(port: int, outbox: Outbox, video: Any, **over: Any) -> Gb28181Channel:
    cfg = Gb28181Settings.model_validate(
        {
            "id": "county",
            "platform_id": PLATFORM_ID,
            "host": "127.0.0.1",
            "port": port,
            "device_id": DEVICE_ID,
            "password": {"file": "pw"},
            "request_timeout_s": 1.0,
            **over,
        }
    )
    return Gb28181Channel(
        cfg,
        password=PASSWORD,
        outbox=outbox,
        metrics=Metrics(),
        cameras=[CAM],
        camera_online=lambda _d: True,
        box_name="box",
        firmware="1.0",
        video=video,
    )


def offer(port: int, *, tcp: bool = False, setup: str = "passive", session: str = "Play") -> bytes:
    media = f"m=video {port} {'TCP/RTP/AVP' if tcp else 'RTP/AVP'} 96 98 97"
    extra = [f"a=setup:{setup}", "a=connection:new"] if tcp else []
    lines = [
        "v=0",
        f"o={CAM.channel_id} 0 0 IN IP4 127.0.0.1",
        f"s={session}",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        media,
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
        "a=rtpmap:98 H264/90000",
        *extra,
        f"y={SSRC:010d}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@contextlib.asynccontextmanager
async def registered(ch: Gb28181Channel) -> AsyncIterator[asyncio.Task[None]]:
    up = asyncio.Event()
    task = asyncio.create_task(ch.run(up.set))
    try:
        await asyncio.wait_for(up.wait(), 5)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def invite(p: FakePlatform, sdp: bytes, to: str = CAM.channel_id) -> tuple[SipMessage, SipMessage]:
    msg = p.build("INVITE", sdp, "application/sdp", to=to)
    p.send_raw(msg.encode())
    return msg, await p.answer_to(msg)


def ack(p: FakePlatform, inv: SipMessage, ok: SipMessage) -> None:
    a = SipMessage(method="ACK", uri=inv.uri)
    a.headers = [
        ("Via", inv.get("Via") or ""),
        ("From", inv.get("From") or ""),
        ("To", ok.get("To") or ""),
        ("Call-ID", inv.get("Call-ID") or ""),
        ("CSeq", f"{inv.cseq[0]} ACK"),
    ]
    p.send_raw(a.encode())


def decode(rtp: list[bytes]) -> tuple[int, list[int]]:
    """Frames decoded and packet PTS, from RTP packets (joined in sequence order)."""
    for pkt in rtp:
        v, pt, _seq, _ts, ssrc = struct.unpack(">BBHII", pkt[:12])
        assert (v, pt & 0x7F, ssrc) == (0x80, 96, SSRC)
    ps = b"".join(p[12:] for p in rtp)
    frames, pts = 0, []
    with av.open(io.BytesIO(ps), mode="r", format="mpeg") as c:
        for packet in c.demux(video=0):
            if packet.pts is not None:
                pts.append(packet.pts)
            frames += len(packet.decode())
    return frames, pts


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets.append(data)


async def _wait_bye(p: FakePlatform, timeout: float = 10) -> SipMessage:
    async with asyncio.timeout(timeout):
        while not any(m.method == "BYE" for m in p.others):
            await asyncio.sleep(0.02)
    return next(m for m in p.others if m.method == "BYE")


async def test_live_over_udp_until_the_camera_ends(outbox: Outbox) -> None:
    p = FakePlatform("udp", PASSWORD)
    await p.start()
    loop = asyncio.get_running_loop()
    rtp_t, rtp = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    try:
        async with registered(channel(p.port, outbox, Frames(finite))):
            inv, ok = await invite(p, offer(rtp_t.get_extra_info("sockname")[1]))
            assert ok.status == 200 and ok.get("Content-Type") == "application/sdp"
            sdp = ok.body.decode()
            assert re.search(r"^m=video \d+ RTP/AVP 96\r?$", sdp, re.M) and f"y={SSRC:010d}" in sdp
            assert "a=rtpmap:96 PS/90000" in sdp and "a=sendonly" in sdp
            ack(p, inv, ok)
            bye = await _wait_bye(p)
            assert bye.get("Call-ID") == inv.get("Call-ID")
        frames, pts = decode(rtp.packets)
        assert frames == len(clip())
        assert pts == sorted(pts) and pts[0] == 90_000
    finally:
        rtp_t.close()
        p.close()


@pytest.mark.parametrize("setup", ["passive", "active"])
async def test_live_over_tcp_with_rfc4571_framing(outbox: Outbox, setup: str) -> None:
    p = FakePlatform("tcp", PASSWORD)
    await p.start()
    received = bytearray()
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.extend(chunk)
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        async with registered(channel(p.port, outbox, Frames(finite), transport="tcp")):
            port = server.sockets[0].getsockname()[1]
            inv, ok = await invite(p, offer(port, tcp=True, setup=setup))
            assert ok.status == 200
            sdp = ok.body.decode()
            assert "TCP/RTP/AVP" in sdp
            assert f"a=setup:{'active' if setup == 'passive' else 'passive'}" in sdp
            if setup == "active":  # we connect to the port the device's answer names
                theirs = int(re.search(r"^m=video (\d+)", sdp, re.M).group(1))  # type: ignore[union-attr]
                reader, writer = await asyncio.open_connection("127.0.0.1", theirs)
                ack(p, inv, ok)
                with contextlib.suppress(ConnectionError):
                    while chunk := await asyncio.wait_for(reader.read(65536), 10):
                        received.extend(chunk)
                writer.close()
            else:
                ack(p, inv, ok)
                await asyncio.wait_for(done.wait(), 10)
            await _wait_bye(p)
    finally:
        server.close()
        p.close()
    packets, off = [], 0
    while off < len(received):
        (n,) = struct.unpack(">H", received[off : off + 2])
        packets.append(bytes(received[off + 2 : off + 2 + n]))
        off += 2 + n
    frames, _pts = decode(packets)
    assert frames == len(clip())


async def test_bye_from_the_platform_stops_the_stream(outbox: Outbox) -> None:
    p = FakePlatform("udp", PASSWORD)
    await p.start()
    loop = asyncio.get_running_loop()
    rtp_t, rtp = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    try:
        async with registered(ch := channel(p.port, outbox, Frames(endless))):
            inv, ok = await invite(p, offer(rtp_t.get_extra_info("sockname")[1]))
            ack(p, inv, ok)
            async with asyncio.timeout(5):
                while len(rtp.packets) < 20:
                    await asyncio.sleep(0.02)
            assert ch.live_sessions == 1
            bye = p.build("BYE", b"", to=CAM.channel_id)
            bye.set("Call-ID", inv.get("Call-ID") or "")
            bye.set("To", ok.get("To") or "")
            p.send_raw(bye.encode())
            assert (await p.answer_to(bye)).status == 200
            await asyncio.sleep(0.2)
            n = len(rtp.packets)
            await asyncio.sleep(0.3)
            assert len(rtp.packets) == n and ch.live_sessions == 0
    finally:
        rtp_t.close()
        p.close()


async def test_invites_we_refuse(outbox: Outbox) -> None:
    p = FakePlatform("udp", PASSWORD)
    await p.start()
    try:
        async with registered(channel(p.port, outbox, Frames(endless), max_live_sessions=1)):
            assert (await invite(p, offer(9), to="51042110301329999999"))[1].status == 404
            assert (await invite(p, offer(9, session="Playback")))[1].status == 488
            assert (await invite(p, b"v=0\r\ns=Play\r\n"))[1].status == 488
            _inv, ok = await invite(p, offer(9))
            assert ok.status == 200
            assert (await invite(p, offer(9)))[1].status == 486  # over the cap
    finally:
        p.close()
