"""The daemon's video source for live sessions: the camera's own stream, demuxed, not decoded.

Each live session opens the camera's stream URL once more with PyAV (libavformat) in a worker
thread and relays its H.264/H.265 access units as they arrive: no decoding, no re-encoding. A
local file (the demo) is replayed in real time. Key frames get the parameter sets from the
stream's extradata when the camera sends them out of band only (in the RTSP SDP), so that every
key frame in the PS stream can start a decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping

from drivers.camera import Camera
from gateway.gb28181.live import AccessUnit, VideoSource

__all__ = ["camera_video", "demux_access_units"]

log = logging.getLogger(__name__)

_QUEUE = 64  # about two seconds of video: a slower platform drops frames rather than memory


def camera_video(cameras: Mapping[str, Camera]) -> VideoSource:
    """The VideoSource of the site's cameras (a camera not streaming yet ends the session)."""

    async def source(device: str) -> AsyncIterator[AccessUnit]:
        cam = cameras.get(device)
        ingest = None if cam is None else cam.ingest
        if ingest is None:
            log.warning("live %s: the camera has no stream yet", device)
            return
        async for au in demux_access_units(ingest.source_url, replay=ingest.replay, label=ingest.display_url):
            yield au

    return source


async def demux_access_units(
    url: str, *, replay: bool = False, label: str = "", open_timeout_s: float = 10.0
) -> AsyncIterator[AccessUnit]:
    """Access units of the first video stream at ``url`` until it ends or the caller stops."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[AccessUnit | None] = asyncio.Queue(_QUEUE)
    stop = threading.Event()

    def put(item: AccessUnit | None) -> None:
        if item is None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        elif not queue.full():
            queue.put_nowait(item)

    def deliver(item: AccessUnit | None) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed at shutdown
            loop.call_soon_threadsafe(put, item)

    thread = threading.Thread(
        target=_read,
        args=(url, replay, open_timeout_s, stop, deliver, label or "stream"),
        daemon=True,
        name="gb28181.live",
    )
    thread.start()
    try:
        while (item := await queue.get()) is not None:
            yield item
    finally:
        stop.set()


def _read(
    url: str,
    replay: bool,
    open_timeout_s: float,
    stop: threading.Event,
    deliver: Callable[[AccessUnit | None], None],
    label: str,
) -> None:
    import av
    import av.error
    from av.bitstream import BitStreamFilterContext

    try:
        options = {} if replay else {"rtsp_transport": "tcp", "allowed_media_types": "video"}
        with av.open(url, options=options, timeout=(open_timeout_s, open_timeout_s)) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            extradata = bytes(stream.codec_context.extradata or b"")
            annexb_params = extradata if extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) else b""
            tb = float(stream.time_base) if stream.time_base else 1 / 90_000
            start, first_pts = time.monotonic(), None
            # MP4/MKV carry length-prefixed NAL units: libavformat's filter makes them Annex B.
            bsf = None
            if extradata and not annexb_params and codec in ("h264", "hevc"):
                bsf = BitStreamFilterContext(f"{codec}_mp4toannexb", stream)
            for raw in container.demux(stream):
                for packet in bsf.filter(raw) if bsf is not None else [raw]:
                    if stop.is_set():
                        return
                    if packet.size == 0 or packet.pts is None:
                        continue
                    data = bytes(packet)
                    if packet.is_keyframe and annexb_params and not _has_parameter_sets(data, codec):
                        data = annexb_params + data
                    if replay:
                        first_pts = packet.pts if first_pts is None else first_pts
                        due = start + (packet.pts - first_pts) * tb
                        time.sleep(max(0.0, due - time.monotonic()))
                    deliver(AccessUnit(data, round(packet.pts * tb * 90_000), bool(packet.is_keyframe), codec))
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        log.warning("live: %s ended: %s", label, type(exc).__name__)
    finally:
        deliver(None)


def _has_parameter_sets(data: bytes, codec: str) -> bool:
    """Whether an Annex B access unit carries its SPS (H.264 NAL 7, H.265 NAL 33)."""
    for part in data.split(b"\x00\x00\x01")[1:]:
        if not part:
            continue
        kind = part[0] & 0x1F if codec == "h264" else (part[0] >> 1) & 0x3F
        if kind == (7 if codec == "h264" else 33):
            return True
    return False
