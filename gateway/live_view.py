"""The status page's live view over WebRTC (aiortc): the camera's H.264 relayed, not re-encoded.

The page sends an SDP offer for one camera; :meth:`LiveViews.offer` answers it with a peer
connection that sends one video track:

- **relay** (the usual case): the camera's own H.264 access units, taken from the ingest before
  decoding (:class:`drivers.rtsp.PacketTap`), rewritten to Annex B with the parameter sets before
  each key frame, and packetised by aiortc as they are. No decode, no encode: a viewer costs the
  box RTP packetisation and SRTP.
- **encode** (only when it must: the stream is not H.264, the camera is polled for snapshots, or
  the browser takes no H.264): the analysed frames (``analysis_fps`` a second) encoded by aiortc
  (VP8). The answer says which, and the page shows it.

ICE gathers host candidates only (``iceServers=[]``: no STUN, no TURN), on the addresses
configured in ``[api.live_view] interfaces`` or else on the address the page was loaded from,
which the technician's browser reaches already. aioice lists every address but 127.0.0.1 on its
own; the list it offers is replaced, per offer, through a context variable (see
:func:`_host_addresses`). The browser's candidates on other networks than ours are dropped from
its offer, so a loopback-only answer never sends a packet off the box.

At most ``max_viewers_per_camera`` viewers of one camera and ``max_viewers`` in all; a viewer is
closed when its page says so (DELETE), when the connection fails or closes, or when the page has
not said it is still open for ``idle_s``. The vision pipeline never waits on a viewer: the ingest
thread keeps the group of pictures in progress and hands bytes over with ``call_soon_threadsafe``
(only while someone watches), and a viewer that falls behind loses packets up to the next key
frame, never the stream.

A new viewer's picture starts at once: it is sent the kept group of pictures first (the last key
frame and what followed), so it does not wait for the camera's next key frame (see
:class:`StreamRelay`). The backlog keeps its real timestamps: Chromium decodes a burst of late
frames as it arrives and does not hold the picture back by its length (the page test prints the
jitter buffer's mean delay: 7 to 42 ms in the runs here, 7 to 9 ms without a backlog).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from drivers.rtsp import DecodedFrame
from edge_config.site import LiveViewSettings
from edge_core.frames import planes_to_bgr
from gateway.live_relay import QUEUE_UNITS, StreamRelay

__all__ = ["LiveAnswer", "LiveViewRefused", "LiveViews"]

log = logging.getLogger(__name__)

_CLOCK = 90_000  # RTP clock of video
_REAP_S = 2.0


class LiveViewRefused(Exception):
    """An offer the box will not answer; ``status`` is the HTTP status to say it with, ``code`` a
    stable name of the reason (the page says it in the technician's language)."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code


@dataclass(frozen=True, slots=True)
class LiveAnswer:
    """The answer to one offer: the viewer's session id (to close it or keep it open), the SDP,
    and what the page shows: mode "relay" (the camera's H.264) or "encode" (analysed frames)."""

    session: str
    sdp: str
    mode: str
    codec: str
    idle_s: float


class CameraSource(Protocol):
    """What the live view needs of a camera (``drivers.camera.Camera`` is one)."""

    @property
    def latest_frame(self) -> DecodedFrame | None: ...


# -- tracks (aiortc is imported only here and below: the gateway starts without it) ----------------


@functools.cache
def _tracks() -> tuple[type[Any], type[Any]]:
    """The two track classes, built on first use so that importing this module needs no aiortc."""
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

    class RelayTrack(MediaStreamTrack):
        """The camera's access units as av.Packets, which aiortc packetises without encoding."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self._queue: deque[tuple[bytes, float]] = deque()
            self._ready = asyncio.Event()
            self._need_key = True
            self._t0: float | None = None
            self.sent = 0
            self.skipped = 0

        def push(self, data: bytes, keyframe: bool, t: float) -> None:
            if self._need_key and not keyframe:
                self.skipped += 1
                return
            if len(self._queue) >= QUEUE_UNITS:  # fallen behind: drop to the next key frame
                self.skipped += len(self._queue)
                self._queue.clear()
                if not keyframe:
                    self._need_key = True
                    return
            self._need_key = False
            self._queue.append((data, t))
            self._ready.set()

        async def recv(self) -> Any:
            while not self._queue:
                if self.readyState != "live":
                    raise MediaStreamError
                self._ready.clear()
                await self._ready.wait()
            data, t = self._queue.popleft()
            if self._t0 is None:
                self._t0 = t
            packet = av.Packet(data)
            packet.pts = int((t - self._t0) * _CLOCK)
            packet.time_base = Fraction(1, _CLOCK)
            self.sent += 1
            return packet

        def stop(self) -> None:
            super().stop()
            self._ready.set()

    class FrameTrack(VideoStreamTrack):
        """The analysed frames, for aiortc to encode (the fallback)."""

        def __init__(self, source: CameraSource, fps: float) -> None:
            super().__init__()
            self._source = source
            self._period = 1.0 / max(1.0, min(fps, 15.0))
            self.sent = 0

        async def recv(self) -> Any:
            frame = None
            while frame is None:
                await asyncio.sleep(self._period)
                latest = self._source.latest_frame
                if latest is not None:
                    frame = await asyncio.to_thread(_to_video_frame, latest)
            pts, time_base = await self.next_timestamp()
            frame.pts, frame.time_base = pts, time_base
            self.sent += 1
            return frame

    return RelayTrack, FrameTrack


def _to_video_frame(frame: DecodedFrame) -> Any:
    import av

    bgr = planes_to_bgr(*frame.compact())
    h, w = bgr.shape[:2]
    return av.VideoFrame.from_ndarray(bgr[: h - h % 2, : w - w % 2], format="bgr24")


# -- which addresses ICE offers ---------------------------------------------------------------------

_OFFERED: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("live_view_offered", default=None)
_original_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's address lister, replaced: inside an offer, the addresses chosen for it (loopback
    included, which aioice's own lister skips); elsewhere, aioice's own answer."""
    chosen = _OFFERED.get()
    if chosen is None:
        assert _original_host_addresses is not None
        return _original_host_addresses(use_ipv4, use_ipv6)
    return [a for a in chosen if (use_ipv6 if ":" in a else use_ipv4)]


def _install_address_lister() -> None:
    global _original_host_addresses
    import aioice.ice

    if aioice.ice.get_host_addresses is not _host_addresses:
        _original_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _host_addresses


def _same_scope(ours: tuple[str, ...]) -> Callable[[str], bool]:
    """Which of the browser's candidate addresses we may send to: loopback ones when we offer only
    loopback; else any IP or mDNS name (the browser's LAN addresses, hidden behind .local names)."""
    ips = [ipaddress.ip_address(a) for a in ours]
    loopback_only = all(ip.is_loopback for ip in ips)

    def ok(host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return not loopback_only and host.endswith(".local")
        return ip.is_loopback if loopback_only else not ip.is_loopback

    return ok


def filter_candidates(sdp: str, allowed: Callable[[str], bool]) -> str:
    """The offer without the candidates we must not send to (``a=candidate`` lines)."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or not allowed(parts[4]):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


# -- the sessions ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    id: str
    camera: str
    pc: Any
    track: Any
    mode: str
    last_seen: float


class LiveViews:
    """Every WebRTC viewer of the box, within the configured limits."""

    def __init__(
        self,
        settings: LiveViewSettings,
        cameras: Mapping[str, CameraSource],
        relays: Mapping[str, StreamRelay],
        *,
        fps: Callable[[str], float] = lambda _cid: 5.0,
    ) -> None:
        self.settings = settings
        self._cameras = cameras
        self._relays = relays
        self._fps = fps
        self._sessions: dict[str, _Session] = {}
        self._lock = asyncio.Lock()
        self._imported: asyncio.Task[Any] | None = None

    def prepare(self) -> None:
        """Import aiortc in a worker thread, once: called when the page is loaded, so that its
        first offer does not wait for the import (a quarter of a second here, about 30 MB, more
        on a slower box); a box whose page is never opened never pays it."""
        if self._imported is None and self.settings.enabled and self._cameras:
            self._imported = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_tracks), name="gw[live-view].import"
            )

    def viewers(self, camera_id: str | None = None) -> int:
        return sum(1 for s in self._sessions.values() if camera_id is None or s.camera == camera_id)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "viewers": self.viewers(),
            "max_viewers": self.settings.max_viewers,
            "max_viewers_per_camera": self.settings.max_viewers_per_camera,
            "sessions": [{"camera": s.camera, "mode": s.mode} for s in self._sessions.values()],
        }

    async def offer(self, camera_id: str, sdp: str, page_address: str) -> LiveAnswer:
        """Answer a browser's offer for ``camera_id``; ``page_address`` is the box's address the
        page was loaded from (offered when no interfaces are configured)."""
        st = self.settings
        if not st.enabled:
            raise LiveViewRefused(409, "the live view over WebRTC is off ([api.live_view] enabled = false)", "off")
        source = self._cameras.get(camera_id)
        if source is None:
            raise LiveViewRefused(404, f"no camera {camera_id!r} in the site file", "no_camera")
        if "m=video" not in sdp:
            raise LiveViewRefused(
                400, "the offer has no video section: the page must ask to receive video", "no_video_section"
            )
        relay = self._relays.get(camera_id)
        takes_h264 = "H264/90000" in sdp
        if relay is not None and relay.codec == "h264" and takes_h264:
            mode = "relay"
        elif st.encode_fallback:
            if source.latest_frame is None:
                raise LiveViewRefused(409, f"no video from camera {camera_id!r} yet", "no_video_yet")
            mode = "encode"
        else:
            why = "the browser takes no H.264" if relay is not None and relay.codec == "h264" else "not H.264"
            raise LiveViewRefused(
                409, f"cannot relay camera {camera_id!r} ({why}) and encode_fallback is off", "cannot_relay"
            )
        async with self._lock:
            if self.viewers(camera_id) >= st.max_viewers_per_camera:
                raise LiveViewRefused(
                    429,
                    f"camera {camera_id!r} has {st.max_viewers_per_camera} viewers already (max_viewers_per_camera)",
                    "camera_full",
                )
            if self.viewers() >= st.max_viewers:
                raise LiveViewRefused(429, f"the box has {st.max_viewers} viewers already (max_viewers)", "box_full")
            return await self._answer(camera_id, sdp, page_address, mode, relay, source)

    async def _answer(
        self,
        camera_id: str,
        sdp: str,
        page_address: str,
        mode: str,
        relay: StreamRelay | None,
        source: CameraSource,
    ) -> LiveAnswer:
        if self._imported is not None:
            await self._imported
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

        _install_address_lister()
        relay_track_cls, frame_track_cls = _tracks()
        ours = self.settings.interfaces or (page_address,)
        offer = RTCSessionDescription(sdp=filter_candidates(sdp, _same_scope(ours)), type="offer")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = relay_track_cls() if mode == "relay" else frame_track_cls(source, self._fps(camera_id))
        session = _Session(secrets.token_urlsafe(18), camera_id, pc, track, mode, time.monotonic())
        token = _OFFERED.set(tuple(ours))
        try:
            # The transceiver exists before the offer is applied: aiortc picks the codecs then,
            # from the preferences (the camera's H.264 for a relay, VP8 when it encodes).
            transceiver = pc.addTransceiver(track, direction="sendonly")
            want = "video/h264" if mode == "relay" else "video/vp8"
            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in (want, "video/rtx")])
            await pc.setRemoteDescription(offer)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except (ValueError, RuntimeError, OSError) as exc:
            await pc.close()
            raise LiveViewRefused(400, f"cannot answer the offer: {exc}", "bad_offer") from exc
        finally:
            _OFFERED.reset(token)
        if mode == "relay" and relay is not None:
            relay.attach(track)
        self._sessions[session.id] = session

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.id)

        codec = "H.264" if mode == "relay" else "VP8"
        log.info("live view: camera %s to a viewer (%s, %s), %d viewers", camera_id, mode, codec, self.viewers())
        return LiveAnswer(session.id, pc.localDescription.sdp, mode, codec, self.settings.idle_s)

    def keepalive(self, session_id: str) -> bool:
        s = self._sessions.get(session_id)
        if s is None:
            return False
        s.last_seen = time.monotonic()
        return True

    async def close(self, session_id: str) -> bool:
        s = self._sessions.pop(session_id, None)
        if s is None:
            return False
        relay = self._relays.get(s.camera)
        if relay is not None:
            relay.detach(s.track)
        s.track.stop()
        await s.pc.close()
        log.info("live view: a viewer of camera %s closed, %d viewers", s.camera, self.viewers())
        return True

    async def close_all(self) -> None:
        for sid in list(self._sessions):
            await self.close(sid)

    def reap(self, now: float) -> list[str]:
        """Sessions whose page has been silent past ``idle_s``."""
        return [sid for sid, s in self._sessions.items() if now - s.last_seen > self.settings.idle_s]

    async def run(self) -> None:
        """Close idle viewers until cancelled, then close them all."""
        try:
            while True:
                await asyncio.sleep(_REAP_S)
                for sid in self.reap(time.monotonic()):
                    log.info("live view: closing a viewer silent for %.0f s", self.settings.idle_s)
                    await self.close(sid)
        finally:
            await asyncio.shield(self.close_all())
