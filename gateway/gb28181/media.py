"""The daemon's video source for live sessions: the camera's own stream, as its ingest reads it.

The camera's ingest demuxes its stream once, for the analysis. A :class:`CameraTap` is that
ingest's packet tap (it forwards everything to the live view's relay it wraps) and, while a
GB/T 28181 session watches, hands each compressed access unit over as Annex B, with the parameter
sets in front of key frames that lack them (RTSP and MP4 carry them out of band): no second
connection to the camera, no decoding, no re-encoding. A session starts at a key frame, drops to
the next key frame when it falls behind, and ends when the camera's stream does (the ingest
disconnects, or nothing arrives for the camera's stall timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from drivers.camera import Camera, CameraState
from drivers.rtsp import PacketTap
from gateway.gb28181.live import AccessUnit
from gateway.h264 import annexb_parameter_sets, split_annexb, to_annexb

__all__ = ["CameraTap", "CameraVideo", "hevc_parameter_sets"]

log = logging.getLogger(__name__)

_QUEUE = 64  # about two seconds of video: a slower platform drops frames rather than memory
_CHECK_S = 0.5  # how often a waiting session looks whether the camera's stream is still there
_CLOCK = 90_000
_SPS = {"h264": 7, "hevc": 33}


def _nal_type(unit: bytes, codec: str) -> int:
    return unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F


def _has_sps(annexb: bytes, codec: str) -> bool:
    """Whether an Annex B access unit carries its SPS (H.264 NAL 7, H.265 NAL 33)."""
    return any(_nal_type(u, codec) == _SPS[codec] for u in split_annexb(annexb[:1024]))


def hevc_parameter_sets(extradata: bytes) -> tuple[bytes, int]:
    """VPS, SPS and PPS from H.265 extradata as Annex B, and the NAL length size of the packets (0:
    Annex B already). Extradata is Annex B (RTSP's sprop-vps/sps/pps) or an hvcC record (MP4),
    ISO/IEC 14496-15 8.3.3.1: 22 bytes of header, then arrays of NAL units."""
    if not extradata or extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        return annexb_parameter_sets(extradata)
    if len(extradata) < 23 or extradata[0] != 1:
        raise ValueError("extradata is neither Annex B nor an hvcC record")
    length_size = (extradata[21] & 0x03) + 1
    units, pos = [], 23
    for _ in range(extradata[22]):
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            units.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return b"".join(b"\x00\x00\x00\x01" + u for u in units if u), length_size


class _Watcher:
    """One session's queue: from a key frame on; when full, it waits for the next key frame."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, bool, float]] = asyncio.Queue(_QUEUE)
        self.started = False
        self.dropped = 0

    def push(self, item: tuple[bytes, bool, float]) -> None:
        self.started = self.started or item[1]
        if not self.started:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            self.started = False


class CameraTap:
    """A camera's packet tap (:class:`drivers.rtsp.PacketTap`): forwards to ``inner`` (the live
    view's relay) and feeds the GB/T 28181 sessions of the camera."""

    def __init__(self, inner: PacketTap | None, loop: asyncio.AbstractEventLoop, camera_id: str) -> None:
        self._inner = inner
        self._loop = loop
        self._camera_id = camera_id
        self._watchers: set[_Watcher] = set()
        self.codec: str | None = None
        self._parameter_sets = b""
        self._length_size = 0

    # PacketTap, in the ingest thread -----------------------------------------------------

    @property
    def wanted(self) -> bool:
        return bool(self._watchers) or (self._inner is not None and self._inner.wanted)

    def stream_opened(self, codec: str, extradata: bytes, width: int, height: int) -> None:
        if self._inner is not None:
            self._inner.stream_opened(codec, extradata, width, height)
        self.codec = codec
        try:
            read = hevc_parameter_sets if codec == "hevc" else annexb_parameter_sets
            self._parameter_sets, self._length_size = read(extradata)
        except ValueError as exc:
            log.warning("camera %s: cannot read the stream's parameter sets: %s", self._camera_id, exc)
            self._parameter_sets, self._length_size = b"", 0

    def packet(self, data: bytes, is_keyframe: bool) -> None:
        if self._inner is not None and self._inner.wanted:
            self._inner.packet(data, is_keyframe)
        codec = self.codec
        if not self._watchers or codec not in _SPS:
            return
        unit = to_annexb(data, self._length_size)
        if is_keyframe and self._parameter_sets and not _has_sps(unit, codec):
            unit = self._parameter_sets + unit
        with contextlib.suppress(RuntimeError):  # loop closed at shutdown
            self._loop.call_soon_threadsafe(self._fan_out, (unit, is_keyframe, time.monotonic()))

    # on the loop -------------------------------------------------------------------------

    def _fan_out(self, item: tuple[bytes, bool, float]) -> None:
        for w in tuple(self._watchers):
            w.push(item)

    async def watch(self, streaming: Callable[[], bool], stall_s: float) -> AsyncIterator[AccessUnit]:
        """Access units from the next key frame on, with PTS from their arrival (90 kHz, from 1 s),
        until ``streaming()`` turns False or nothing arrives for ``stall_s``."""
        w = _Watcher()
        self._watchers.add(w)
        try:
            t0: float | None = None
            last = time.monotonic()
            while True:
                try:
                    async with asyncio.timeout(_CHECK_S):
                        data, key, t = await w.queue.get()
                except TimeoutError:
                    if not streaming() or time.monotonic() - last > stall_s:
                        return
                    continue
                last = time.monotonic()
                t0 = t if t0 is None else t0
                yield AccessUnit(data, _CLOCK + round((t - t0) * _CLOCK), key, self.codec or "")
        finally:
            self._watchers.discard(w)
            if w.dropped:
                log.warning("live %s: the platform fell behind, %d frames dropped", self._camera_id, w.dropped)


class CameraVideo:
    """The :class:`gateway.gb28181.live.VideoSource` of the site's cameras, through their taps."""

    def __init__(self, cameras: Mapping[str, Camera], taps: Mapping[str, CameraTap]) -> None:
        self._cameras = cameras
        self._taps = taps

    def _streaming(self, device: str) -> bool:
        cam = self._cameras.get(device)
        if cam is None or cam.ingest is None:
            return False
        return cam.state is CameraState.STREAMING and cam.ingest.connected

    def codec(self, device: str) -> str | None:
        tap = self._taps.get(device)
        return tap.codec if tap is not None and self._streaming(device) else None

    async def open(self, device: str) -> AsyncIterator[AccessUnit]:
        tap, cam = self._taps.get(device), self._cameras.get(device)
        if tap is None or cam is None:
            return
        stall_s = cam.config.stream.stall_timeout_s
        async for au in tap.watch(lambda: self._streaming(device), stall_s):
            yield au
