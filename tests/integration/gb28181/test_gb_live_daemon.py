"""Live video through the daemon, from a camera it ingests: the ONVIF simulator names the stream,
the GStreamer RTSP server (or, for H.265, a file the ingest replays) serves it, and an INVITE of
the camera's channel gets that very stream relayed from the camera's ingest (no second connection,
no decoding) as PS over RTP, which libavformat's MPEG-PS demuxer (PyAV) demuxes and decodes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import av
import pytest

from bench.gb28181 import FPS, make_clip
from drivers.camera import CameraState
from gateway.app import Gateway
from simulators.onvif_camera import OnvifCameraSim
from tests.conftest import free_port
from tests.integration.cameras._peers import RtspServer, gstreamer_missing
from tests.integration.gateway.conftest import running, until
from tests.integration.gb28181.daemon import PASSWORD, gb_site
from tests.integration.gb28181.platform import FakePlatform
from tests.integration.gb28181.test_gb_live import _Rtp, _wait_bye, ack, decode, invite, offer

CHANNEL = "51042110301320000009"
CAMERA = "cam-gate"


def _site(tmp_path: Path, sim: OnvifCameraSim, platforms: dict[str, tuple[int, str]]) -> Path:
    (tmp_path / "campw").write_text("cam-pass\n")
    camera = f"""
[[devices]]
kind = "onvif"
id = "{CAMERA}"
host = "127.0.0.1"
port = {sim.port}
username = "{sim.username}"
password = {{ file = "campw" }}
national_id = "{CHANNEL}"
events = false
stream = {{ analysis_fps = 2.0, stall_timeout_s = 2.0, reconnect_max_s = 30 }}
"""
    tables = {name: {"port": port, "version": version} for name, (port, version) in platforms.items()}
    return gb_site(tmp_path, tables, camera)


@asynccontextmanager
async def platforms(*versions: str) -> AsyncIterator[list[FakePlatform]]:
    ps = [FakePlatform("udp", PASSWORD) for _ in versions]
    try:
        for p in ps:
            await p.start()
        yield ps
    finally:
        for p in ps:
            p.close()


async def _streaming(gw: Gateway, ps: list[FakePlatform]) -> None:
    await until(lambda: all(p.accepted for p in ps), 20, "the registrations")
    await until(lambda: gw.camera_set.cameras[CAMERA].state is CameraState.STREAMING, 30, "the camera's stream")


@asynccontextmanager
async def rtp_sink() -> AsyncIterator[tuple[int, _Rtp]]:
    transport, rtp = await asyncio.get_running_loop().create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1], rtp
    finally:
        transport.close()


def _frames_sent(rtp: _Rtp) -> int:
    """RTP packets with the marker bit: one a frame (its last packet)."""
    return sum(p[1] >> 7 for p in rtp.packets)


def _in_order(rtp: _Rtp) -> list[bytes]:
    return sorted(rtp.packets, key=lambda p: struct.unpack(">H", p[2:4])[0])


async def test_live_from_an_rtsp_camera_through_the_daemon_until_the_camera_drops(tmp_path: Path) -> None:
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(make_clip(tmp_path / "clip.mp4", 320, 192), free_port())
    server.start()
    try:
        async with (
            OnvifCameraSim(password="cam-pass", rtsp_main=server.url("main"), rtsp_sub=server.url("sub")) as sim,
            platforms("2016") as ps,
            running(_site(tmp_path, sim, {"county": (ps[0].port, "2016")})) as gw,
            rtp_sink() as (port, rtp),
        ):
            await _streaming(gw, ps)
            opens = gw.camera_set.cameras[CAMERA].ingest.stats.opens  # type: ignore[union-attr]
            inv, ok = await invite(ps[0], offer(port), to=CHANNEL)
            assert ok.status == 200
            ack(ps[0], inv, ok)
            await until(lambda: _frames_sent(rtp) >= 2 * FPS, 15, "two seconds of video")
            # The plug is pulled on the camera: the daemon ends the session with a BYE.
            server.stop()
            bye = await _wait_bye(ps[0])
            assert bye.get("Call-ID") == inv.get("Call-ID")
            assert gw.gb28181["county"].live_sessions == 0
            # The session rode on the ingest's own connection to the camera.
            assert gw.camera_set.cameras[CAMERA].ingest.stats.opens == opens  # type: ignore[union-attr]
        frames, pts = decode(_in_order(rtp))
        assert frames == _frames_sent(rtp) >= 2 * FPS
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
    finally:
        server.stop()


async def test_h265_is_relayed_for_2022_and_refused_for_2016(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clip = make_clip(tmp_path / "clip-h265.mp4", 320, 192, codec="libx265")
    async with (
        # No RTSP server here sends H.265: the ingest replays the file (as the demo does without GStreamer).
        OnvifCameraSim(password="cam-pass", rtsp_main=str(clip), rtsp_sub=str(clip)) as sim,
        platforms("2016", "2022") as ps,
        running(_site(tmp_path, sim, {"old": (ps[0].port, "2016"), "new": (ps[1].port, "2022")})) as gw,
        rtp_sink() as (port, rtp),
    ):
        await _streaming(gw, ps)
        with caplog.at_level(logging.WARNING):
            _inv, refused = await invite(ps[0], offer(port), to=CHANNEL)
        assert refused.status == 488 and refused.reason == "Not Acceptable Here"
        assert "H.265" in (refused.get("Warning") or "") and "2016" in (refused.get("Warning") or "")
        assert f"INVITE for {CHANNEL} refused: the camera sends H.265" in caplog.text
        inv, ok = await invite(ps[1], offer(port), to=CHANNEL)
        assert ok.status == 200
        ack(ps[1], inv, ok)
        await until(lambda: _frames_sent(rtp) >= FPS, 15, "a second of video")
        bye = ps[1].build("BYE", b"", to=CHANNEL)
        bye.set("Call-ID", inv.get("Call-ID") or "")
        bye.set("To", ok.get("To") or "")
        ps[1].send_raw(bye.encode())
        assert (await ps[1].answer_to(bye)).status == 200
        await until(lambda: gw.gb28181["new"].live_sessions == 0, 5, "the session to end")
    packets = _in_order(rtp)
    ps_bytes = b"".join(p[12:] for p in packets)
    psm = ps_bytes.index(b"\x00\x00\x01\xbc")
    assert ps_bytes[psm + 12] == 0x24  # the PSM's stream_type: H.265
    with av.open(io.BytesIO(ps_bytes), mode="r", format="mpeg") as c:
        assert c.streams.video[0].codec_context.name == "hevc"
    frames, pts = decode(packets)
    assert frames == _frames_sent(rtp) >= FPS
    assert pts == sorted(pts)
