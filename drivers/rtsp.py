"""RTSP ingest with PyAV: decode in a worker thread, hand the planes over, never stop silently.

Each stream gets its own thread (the default executor has too few workers for 32+ cameras), RTSP
over TCP, open and read timeouts. In ``keyframes_only`` mode the decoder is told to skip every
non-key frame (``skip_frame = NONKEY``): packets are still read, but only about one frame per GOP is
decoded, which is what makes 100 cameras fit on two cores. Otherwise frames are decoded and handed
over at most ``analysis_fps`` times a second.

Frames reach the :data:`FrameSink` **in the worker thread**, as a :class:`DecodedFrame` whose
``luma`` and ``chroma`` are read-only views of the decoder's planes (stride kept, no copy; see
:func:`frame_planes`). The sink may run analysis right there (numba kernels release the GIL); it
must not touch asyncio objects except through ``loop.call_soon_threadsafe``, and it must copy the
planes if it keeps them past the call.

No frame for ``stall_timeout_s`` is a stall: the stream is closed and reopened with capped,
jittered exponential backoff, for ever, until cancelled. Corrupt packets and undecodable data are
counted, never fatal. With ``replay=True`` the URL may be a local file: it is read at its own frame
rate and looped, through the same decode path (for the demo without an RTSP server, and the
benchmark). Credentials may be in ``url``; only ``display_url`` ever appears in logs. ``refresh_url``, when
given, is asked before every reopen for a new (url, display_url): cameras hand out stream URIs
that expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge_core.backoff import Backoff
from edge_core.frames import bgr_planes
from edge_core.ratelimit import RateLimitedLogger

__all__ = ["DecodedFrame", "FrameSink", "IngestStats", "PacketTap", "RtspIngest", "bgr_planes", "frame_planes"]

logger = logging.getLogger(__name__)
_sink_log = RateLimitedLogger(logger, 60.0)


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame. ``t`` is wall-clock seconds when it was decoded.

    ``luma`` is the (H, W) Y plane. ``chroma`` is the (U, V) pair at the stream's own subsampling
    ((H/2, W/2) for the usual 4:2:0), or None when the source has no colour to give (a grey
    snapshot). Both may be views with padded rows: :meth:`compact` makes them contiguous.
    """

    camera: str
    t: float
    luma: npt.NDArray[np.uint8]
    is_keyframe: bool
    chroma: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None = None

    def compact(self) -> tuple[npt.NDArray[np.uint8], tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None]:
        """Luma and chroma as C-contiguous arrays, as the vision stage takes them: a copy only of
        a plane whose rows are padded or interleaved (NV12)."""
        if self.chroma is None:
            return np.ascontiguousarray(self.luma), None
        u, v = self.chroma
        return np.ascontiguousarray(self.luma), (np.ascontiguousarray(u), np.ascontiguousarray(v))


FrameSink = Callable[[DecodedFrame], None]
"""Receives frames in the ingest's worker thread; see the module docstring."""


class PacketTap(Protocol):
    """Sees the stream's compressed packets before decoding, in the ingest's worker thread (the
    live view relays them to browsers without re-encoding). No PyAV type crosses it: bytes only.

    ``wanted`` is read before each packet: while it is False (nobody watching) the tap costs one
    attribute read a packet. Both calls must return at once (hand the bytes over, never wait).
    """

    @property
    def wanted(self) -> bool: ...

    def stream_opened(self, codec: str, extradata: bytes, width: int, height: int) -> None:
        """A (re)opened stream: its codec name ("h264", "hevc", ...) and out-of-band parameter
        sets (avcC or Annex B, as the demuxer gives them)."""

    def packet(self, data: bytes, is_keyframe: bool) -> None:
        """One compressed packet (a whole access unit), in stream order."""


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
    sink_errors: int = 0
    last_frame_monotonic: float | None = None
    last_error: str = ""
    width: int = 0
    height: int = 0


# 8-bit pixel formats by where their chroma lives: three planes, or one interleaved plane
_PLANAR_YUV = frozenset(
    ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p", "yuv411p", "yuv410p")
)
_SEMI_PLANAR = {"nv12": (0, 1), "nv21": (1, 0)}  # offsets of U and V within each pair


def _plane_view(plane: Any, samples: int = 1) -> npt.NDArray[np.uint8]:
    """A plane's rows as bytes; ``samples`` bytes a pixel (2 for NV12's interleaved U/V plane,
    whose ``width`` PyAV gives in pixels)."""
    height, width, stride = plane.height, plane.width * samples, plane.line_size
    view = np.frombuffer(plane, dtype=np.uint8)[: stride * height].reshape(height, stride)[:, :width]
    view.flags.writeable = False
    return view


def frame_planes(frame: Any) -> tuple[npt.NDArray[np.uint8], tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]]:
    """The Y, U and V planes of a PyAV video frame as uint8 arrays, without copying when possible.

    8-bit planar YUV (what software H.264/H.265 decoders give) is viewed in place, row stride
    (``line_size``) kept, so rows may be padded. NV12/NV21 (hardware decoders) give U and V as
    strided views of the interleaved plane. Anything else (10-bit, RGB, grey) is converted to
    yuv420p first, a copy: reading a 10-bit plane as bytes would give garbage.
    """
    name = frame.format.name
    if name in _PLANAR_YUV:
        return _plane_view(frame.planes[0]), (_plane_view(frame.planes[1]), _plane_view(frame.planes[2]))
    if name in _SEMI_PLANAR:
        uv = _plane_view(frame.planes[1], 2)
        u0, v0 = _SEMI_PLANAR[name]
        return _plane_view(frame.planes[0]), (uv[:, u0::2], uv[:, v0::2])
    return frame_planes(frame.reformat(format="yuv420p"))


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
        refresh_url: Callable[[], Awaitable[tuple[str, str] | None]] | None = None,
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
        self._refresh_url = refresh_url
        self.stats = IngestStats()
        self.connected = False
        self.packet_tap: PacketTap | None = None
        """Set before ``run`` to see the compressed packets (see :class:`PacketTap`)."""

    def __repr__(self) -> str:
        return f"RtspIngest({self.camera_id!r}, {self.display_url!r})"

    async def run(self, sink: FrameSink) -> None:
        """Ingest until cancelled. Never raises for stream trouble: it reconnects with backoff."""
        backoff = Backoff(0.5, self.reconnect_max_s)
        while True:
            delivered_before = self.stats.frames_decoded
            error = await self._session_in_thread(sink)
            self.connected = False
            if self.stats.frames_decoded > delivered_before:
                backoff.reset()
            self.stats.failures += 1
            self.stats.last_error = error
            delay = backoff.next_delay()
            logger.warning(
                "camera %s: stream %s ended (%s); reconnecting in %.1f s",
                self.camera_id,
                self.display_url,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            if self._refresh_url is not None:
                # The camera may hand out stream URIs that expire: ask for a new one before reopening.
                fresh = await self._refresh_url()
                if fresh is not None:
                    self._url, self.display_url = fresh

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
            tap = self.packet_tap
            if tap is not None:
                tap.stream_opened(ctx.name, bytes(ctx.extradata or b""), ctx.width, ctx.height)
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
                    elif tap is not None and tap.wanted:
                        self._tap(tap, packet)
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
                        luma, chroma = frame_planes(frame)
                        self.stats.height, self.stats.width = luma.shape
                        self.stats.frames_delivered += 1
                        self._deliver(
                            sink, DecodedFrame(self.camera_id, time.time(), luma, bool(frame.key_frame), chroma)
                        )
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

    def _tap(self, tap: PacketTap, packet: Any) -> None:
        # Like a failing frame sink: a viewer's bug never closes the stream analysis reads.
        try:
            tap.packet(bytes(packet), bool(packet.is_keyframe))
        except Exception:
            _sink_log.exception(self.camera_id, "camera %s: the packet tap failed; the stream goes on", self.camera_id)

    def _deliver(self, sink: FrameSink, frame: DecodedFrame) -> None:
        # A bug in whatever consumes frames is not a network fault: log it with its traceback,
        # count it, and keep the stream open (reconnecting would not fix it).
        try:
            sink(frame)
        except Exception:
            self.stats.sink_errors += 1
            _sink_log.exception(
                self.camera_id, "camera %s: the frame handler failed; the stream goes on", self.camera_id
            )

    def _describe(self, exc: BaseException, what: str) -> str:
        text = str(getattr(exc, "strerror", None) or exc)
        # FFmpeg errors may quote the URL it was given; show the redacted one instead.
        text = text.replace(self._url, self.display_url)
        return f"{what}: {type(exc).__name__}: {text}"[:300]
