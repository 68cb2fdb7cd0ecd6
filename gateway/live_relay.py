"""One camera's H.264 for the live view's viewers: the packets before decoding, in the shape a
browser takes, with the group of pictures in progress kept for the next viewer.

The ingest thread calls :meth:`StreamRelay.packet` for every access unit (it is the camera's
:class:`drivers.rtsp.PacketTap`); the relay rewrites it to Annex B with the parameter sets before
each key frame, keeps it while it belongs to the GOP in progress, and, while anyone watches,
hands it to the event loop with ``call_soon_threadsafe``, never waiting. :mod:`gateway.live_view`
answers the browsers' offers and feeds its tracks from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Protocol

from gateway.h264 import annexb_parameter_sets, has_parameter_sets, to_annexb

__all__ = ["QUEUE_UNITS", "StreamRelay"]

log = logging.getLogger(__name__)

QUEUE_UNITS = 120
"""Access units a viewer may fall behind (about 5 s at 25 fps) before it skips to a key frame;
also the longest GOP kept."""
_GOP_BYTES = 2 * 2**20  # a longer group of pictures is not kept: a new viewer waits for the next key frame


class _Viewer(Protocol):
    def push(self, data: bytes, keyframe: bool, t: float) -> None: ...


class StreamRelay:
    """One camera's packet tap (see :class:`drivers.rtsp.PacketTap`): the ingest thread hands
    each access unit over while anyone watches; the event loop fans it out to the viewers.

    The relay keeps the group of pictures in progress (the last key frame and what followed it,
    at most ``QUEUE_UNITS`` units and ``_GOP_BYTES``), and a new viewer gets it first: its picture
    starts at once instead of at the camera's next key frame, up to a GOP later (1 s for the
    demo camera, often 2 to 4 s for others)."""

    def __init__(self, camera_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.camera_id = camera_id
        self._loop = loop
        # viewer -> sequence number of the last unit it was given from the kept GOP; guarded by
        # _lock with the GOP, so a unit reaches a joining viewer once, either way
        self._viewers: dict[_Viewer, int] = {}
        self._lock = threading.Lock()
        self._gop: list[tuple[bytes, float, int]] = []
        self._gop_bytes = 0
        self._seq = 0
        self.codec: str | None = None
        """The stream's codec ("h264", "hevc", ...); None until it opens."""
        self.width = 0
        self.height = 0
        self._parameter_sets = b""
        self._length_size = 0
        self.packets = 0

    # PacketTap, in the ingest thread -----------------------------------------------------

    @property
    def wanted(self) -> bool:
        # Every unit is wanted: the GOP in progress is kept for the next viewer.
        return self.codec == "h264"

    def stream_opened(self, codec: str, extradata: bytes, width: int, height: int) -> None:
        self.codec, self.width, self.height = codec, width, height
        with self._lock:
            self._gop, self._gop_bytes = [], 0
        if codec == "h264":
            try:
                self._parameter_sets, self._length_size = annexb_parameter_sets(extradata)
            except ValueError as exc:
                log.warning("camera %s: cannot read the stream's H.264 parameter sets: %s", self.camera_id, exc)
                self._parameter_sets, self._length_size = b"", 0

    def packet(self, data: bytes, is_keyframe: bool) -> None:
        if self.codec != "h264":
            return
        unit = to_annexb(data, self._length_size)
        # A browser joining at a key frame needs the SPS/PPS, which RTSP and MP4 often carry only
        # out of band (SDP, avcC): put them in front of every key frame that lacks them.
        if is_keyframe and self._parameter_sets and not has_parameter_sets(unit):
            unit = self._parameter_sets + unit
        t = time.monotonic()
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._keep(unit, is_keyframe, t, seq)
            watched = bool(self._viewers)
        if watched:
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                self._loop.call_soon_threadsafe(self._fan_out, unit, is_keyframe, t, seq)

    def _keep(self, unit: bytes, keyframe: bool, t: float, seq: int) -> None:
        if keyframe:
            self._gop, self._gop_bytes = [], 0
        elif not self._gop:
            return  # no key frame kept: nothing after it can be decoded
        if len(self._gop) >= QUEUE_UNITS or self._gop_bytes + len(unit) > _GOP_BYTES:
            self._gop, self._gop_bytes = [], 0
            return
        self._gop.append((unit, t, seq))
        self._gop_bytes += len(unit)

    # on the loop -------------------------------------------------------------------------

    @property
    def watching(self) -> int:
        """How many viewers the relay feeds."""
        return len(self._viewers)

    def _fan_out(self, unit: bytes, keyframe: bool, t: float, seq: int) -> None:
        self.packets += 1
        for viewer, given in tuple(self._viewers.items()):
            if seq > given:
                viewer.push(unit, keyframe, t)

    def attach(self, viewer: _Viewer) -> None:
        with self._lock:
            kept = list(self._gop)
            self._viewers[viewer] = kept[-1][2] if kept else self._seq
        for i, (unit, t, _seq) in enumerate(kept):
            viewer.push(unit, i == 0, t)

    def detach(self, viewer: _Viewer) -> None:
        with self._lock:
            self._viewers.pop(viewer, None)
