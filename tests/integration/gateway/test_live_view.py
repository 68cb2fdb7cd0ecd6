"""The live view's sessions with a real aiortc peer on loopback: the encode fallback, the limits,
idle closing, and a refused offer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from drivers.rtsp import DecodedFrame
from edge_config.site import LiveViewSettings
from gateway.live_relay import StreamRelay
from gateway.live_view import _OFFERED, LiveViewRefused, LiveViews, _install_address_lister


class Camera:
    """A camera whose stream is not H.264 (the relay never sees a packet): analysed frames only."""

    def __init__(self) -> None:
        y = np.tile(np.arange(160, dtype=np.uint8), (120, 1))
        uv = np.full((60, 80), 128, np.uint8)
        self.latest_frame: DecodedFrame | None = DecodedFrame("cam", time.time(), y, True, (uv, uv))


@asynccontextmanager
async def viewer(views: LiveViews, camera: str = "cam", *, drop_h264: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """A browser-like peer asking for ``camera``: (its peer connection, the answer)."""
    _install_address_lister()
    token = _OFFERED.set(("127.0.0.1",))  # this peer offers loopback only, like the box
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        if drop_h264:  # a browser that takes no H.264
            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType in ("video/VP8", "video/rtx")])
        await pc.setLocalDescription(await pc.createOffer())
        answer = await views.offer(camera, pc.localDescription.sdp, "127.0.0.1")
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        yield pc, answer
    finally:
        _OFFERED.reset(token)
        await pc.close()


def live_views(**settings: Any) -> LiveViews:
    relay = StreamRelay("cam", asyncio.get_running_loop())
    return LiveViews(LiveViewSettings(**settings), {"cam": Camera()}, {"cam": relay}, fps=lambda _c: 10.0)


async def test_a_stream_that_is_not_h264_is_encoded_and_plays() -> None:
    views = live_views()
    got: list[Any] = []
    async with viewer(views) as (pc, answer):
        assert (answer.mode, answer.codec) == ("encode", "VP8")
        receiver = pc.getTransceivers()[0].receiver
        async with asyncio.timeout(20):
            while len(got) < 3:
                got.append(await receiver.track.recv())
        assert (got[-1].width, got[-1].height) == (160, 120)
        assert views.status()["sessions"] == [{"camera": "cam", "mode": "encode"}]
    await views.close_all()
    assert views.viewers() == 0


async def test_an_h264_camera_is_relayed_unless_the_browser_takes_no_h264() -> None:
    views = live_views()
    views._relays["cam"].stream_opened("h264", b"", 160, 120)
    async with viewer(views) as (_pc, answer):
        assert (answer.mode, answer.codec) == ("relay", "H.264")
        assert views._relays["cam"].watching == 1  # the relay now hands the camera's packets over
    async with viewer(views, drop_h264=True) as (_pc, answer):
        assert (answer.mode, answer.codec) == ("encode", "VP8")
    await views.close_all()
    assert views._relays["cam"].watching == 0


async def test_limits_per_camera_and_in_all_and_idle_viewers_are_closed() -> None:
    views = live_views(max_viewers_per_camera=2, max_viewers=3, idle_s=5)
    async with viewer(views), viewer(views):
        with pytest.raises(LiveViewRefused) as refused:
            async with viewer(views):
                pass
        assert refused.value.status == 429 and "max_viewers_per_camera" in refused.value.detail
        assert views.viewers("cam") == 2
        # the page keeps one open, the other went silent
        sessions = list(views._sessions)
        assert views.keepalive(sessions[0])
        views._sessions[sessions[1]].last_seen -= 10
        assert views.reap(time.monotonic()) == [sessions[1]]
        assert await views.close(sessions[1])
        assert not views.keepalive(sessions[1])
        assert views.viewers() == 1
    await views.close_all()


async def test_offers_the_box_will_not_answer() -> None:
    views = live_views()
    with pytest.raises(LiveViewRefused) as no_camera:
        await views.offer("nope", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "127.0.0.1")
    assert (no_camera.value.status, no_camera.value.code) == (404, "no_camera")
    with pytest.raises(LiveViewRefused) as no_video:
        await views.offer("cam", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "127.0.0.1")
    assert (no_video.value.status, no_video.value.code) == (400, "no_video_section")
    off = live_views(enabled=False)
    with pytest.raises(LiveViewRefused) as disabled:
        await off.offer("cam", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "127.0.0.1")
    assert (disabled.value.status, disabled.value.code) == (409, "off")
