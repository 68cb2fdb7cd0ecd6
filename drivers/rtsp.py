"""RTSP ingest with PyAV: decode in a worker thread, hand the luma plane over, never stop silently.

Each stream gets its own thread (the default executor has too few workers for 32+ cameras), RTSP
over TCP, open and read timeouts. In ``keyframes_only`` mode the decoder is told to skip every
non-key frame (``skip_frame = NONKEY``): packets are still read, but only about one frame per GOP is
decoded, which is what makes 100 cameras fit on two cores. Otherwise frames are decoded and handed
over at most ``analysis_fps`` times a second.

Frames reach the :data:`FrameSink` **in the worker thread**, as a :class:`LumaFrame` whose ``luma``
is a read-only view of the decoder's Y plane (stride handled, no copy). The sink may run analysis
right there (numba kernels release the GIL); it must not touch asyncio objects except through
``loop.call_soon_threadsafe``, and it must copy ``luma`` if it keeps it past the call.

No frame for ``stall_timeout_s`` is a stall: the stream is closed and reopened with capped,
jittered exponential backoff, for ever, until cancelled. Corrupt packets and undecodable data are
counted, never fatal. With ``replay=True`` the URL may be a local file: it is read at its own frame
rate and looped, through the same decode path (for the demo without an RTSP server, and the
benchmark). Credentials may be in ``url``; only ``display_url`` ever appears in logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FrameSink", "IngestStats", "LumaFrame", "RtspIngest", "luma_view"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class LumaFrame:
    """One decoded frame's luma plane. ``t`` is wall-clock seconds when it was decoded."""

    camera: str
    t: float
    luma: npt.NDArray[np.uint8]
    is_keyframe: bool


FrameSink = Callable[[LumaFrame], None]
"""Receives frames in the ingest's worker thread; see the module docstring."""


@dataclasses.dataclass
class IngestStats:
    """Counters of one stream, read by the status page and the benchmark."""

    opens: int = 0
    stalls: int = 0
    failures: int = 0
    packets: int = 0
    corrupt_packets: int = 0
    frames_decoded: int = 0
    keyframes: int = 0
    frames_delivered: int = 0
    last_frame_monotonic: float | None = None
    last_error: str = ""
    width: int = 0
    height: int = 0


def luma_view(frame: Any) -> npt.NDArray[np.uint8]:
    """The Y plane of a PyAV video frame as an (H, W) uint8 array, without copying.

    For planar or semi-planar YUV and gray frames the first plane is luma: it is viewed in place,
    stride (``line_size``) included. Other formats are converted (a copy).
    """
    name = frame.format.name
    if name.startswith(("yuv", "yuvj", "nv12", "nv21", "gray")) and not name.startswith("gray16"):
        plane = frame.planes[0]
        height, width, stride = plane.height, plane.width, plane.line_size
        buf = np.frombuffer(plane, dtype=np.uint8)
        view = buf[: stride * height].reshape(height, stride)[:, :width]
        view.flags.writeable = False
        return view
    return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)


class _Stall(Exception):
    pass


class RtspIngest:
    """Pulls one RTSP stream until cancelled, reconnecting after stalls and failures."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        display_url: str,
        keyframes_only: bool = False,
        analysis_fps: float = 5.0,
        open_timeout_s: float = 10.0,
        stall_timeout_s: float = 5.0,
        reconnect_max_s: float = 30.0,
        decoder_threads: int = 1,
        replay: bool = False,
    ) -> None:
        self.camera_id = camera_id
        self._url = url
        self.display_url = display_url
        self.keyframes_only = keyframes_only
        self.analysis_fps = analysis_fps
        self.open_timeout_s = open_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.reconnect_max_s = reconnect_max_s
        self.decoder_threads = decoder_threads
        self.replay = replay
        self.stats = IngestStats()
        self.connected = False

    def __repr__(self) -> str:
        return f"RtspIngest({self.camera_id!r}, {self.display_url!r})"

    async def run(self, sink: FrameSink) -> None:
        """Ingest until cancelled. Never raises for stream trouble: it reconnects with backoff."""
        attempt = 0
        while True:
            delivered_before = self.stats.frames_decoded
            error = await self._session_in_thread(sink)
            self.connected = False
            got_frames = self.stats.frames_decoded > delivered_before
            attempt = 1 if got_frames else attempt + 1
            self.stats.failures += 1
            self.stats.last_error = error
            delay = min(self.reconnect_max_s, 0.25 * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
            logger.warning(
                "camera %s: stream %s ended (%s); reconnecting in %.1f s",
                self.camera_id,
                self.display_url,
                error,
                delay,
            )
            await asyncio.sleep(delay)

    async def _session_in_thread(self, sink: FrameSink) -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        stop = threading.Event()

        def target() -> None:
            try:
                result = self._session(sink, stop)
            except BaseException as exc:
                result = f"{type(exc).__name__}: {exc}"

            def finish() -> None:
                if not done.done():
                    done.set_result(result)

            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                loop.call_soon_threadsafe(finish)

        thread = threading.Thread(target=target, name=f"gw[{self.camera_id}].ingest", daemon=True)
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(done), timeout=self.stall_timeout_s + 1.0)
            raise

    def _session(self, sink: FrameSink, stop: threading.Event) -> str:
        """One open-decode-close cycle, in the worker thread. Returns why it ended."""
        import av
        import av.error

        try:
            container = av.open(
                self._url,
                options={"rtsp_transport": "tcp", "rtsp_flags": "prefer_tcp", "allowed_media_types": "video"},
                timeout=(self.open_timeout_s, self.stall_timeout_s),
            )
        except av.error.FFmpegError as exc:
            return self._describe(exc, "open")
        except OSError as exc:
            return self._describe(exc, "open")
        self.stats.opens += 1
        try:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            ctx = stream.codec_context
            ctx.thread_count = self.decoder_threads
            if self.keyframes_only:
                ctx.skip_frame = "NONKEY"
            self.connected = True
            period = 1.0 / self.analysis_fps if self.analysis_fps > 0 else 0.0
            next_due = 0.0
            last_frame = time.monotonic()
            tb = float(stream.time_base) if stream.time_base is not None else 0.0
            clock_base: float | None = None  # replay: monotonic time of pts 0
            offset = 0.0  # replay: seconds added per loop so pts keep increasing
            last_ts = 0.0
            while True:
                for packet in container.demux(stream):
                    if stop.is_set():
                        return "stopped"
                    now = time.monotonic()
                    if now - last_frame > self.stall_timeout_s:
                        self.stats.stalls += 1
                        return f"stall: no frame for {self.stall_timeout_s:g} s"
                    if packet.size == 0:
                        continue
                    if self.replay and packet.pts is not None and tb:
                        last_ts = packet.pts * tb + offset
                        if clock_base is None:
                            clock_base = now - last_ts
                        if stop.wait(max(0.0, clock_base + last_ts - now)):
                            return "stopped"
                    self.stats.packets += 1
                    if packet.is_corrupt:
                        self.stats.corrupt_packets += 1
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError:
                        self.stats.corrupt_packets += 1
                        continue
                    except av.error.FFmpegError as exc:
                        if getattr(exc, "errno", None) in (11,):  # EAGAIN
                            continue
                        self.stats.corrupt_packets += 1
                        continue
                    for frame in frames:
                        now = time.monotonic()
                        last_frame = now
                        self.stats.frames_decoded += 1
                        self.stats.last_frame_monotonic = now
                        if frame.key_frame:
                            self.stats.keyframes += 1
                        if not self.keyframes_only and now < next_due:
                            continue
                        next_due = max(next_due + period, now - period) if period else 0.0
                        luma = luma_view(frame)
                        self.stats.height, self.stats.width = luma.shape
                        self.stats.frames_delivered += 1
                        sink(LumaFrame(self.camera_id, time.time(), luma, bool(frame.key_frame)))
                if not self.replay:
                    return "end of stream"
                # Replay: start the file again, timestamps continuing one frame after the last.
                frame_s = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
                offset = last_ts + frame_s
                container.seek(0, stream=stream)
                ctx.flush_buffers()
        except av.error.FFmpegError as exc:
            if stop.is_set():
                return "stopped"
            self.stats.stalls += 1
            return self._describe(exc, "read")
        finally:
            self.connected = False
            container.close()

    def _describe(self, exc: BaseException, what: str) -> str:
        text = str(getattr(exc, "strerror", None) or exc)
        # FFmpeg errors may quote the URL it was given; show the redacted one instead.
        text = text.replace(self._url, self.display_url)
        return f"{what}: {type(exc).__name__}: {text}"[:300]
