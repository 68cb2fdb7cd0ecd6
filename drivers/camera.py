"""One camera, end to end: ONVIF session, stream ingest, offline detection, events and watchdog.

:class:`Camera` is what the gateway supervises. ``run(signal_sink, on_connected)`` connects over
ONVIF (clock, device information, profiles), then runs until cancelled:

- the ingest (RTSP all frames, RTSP key frames only, or ONVIF snapshot polling), handing frames to
  the ``frame_sink`` given at construction (the gateway's vision stage), gated by the camera's own
  motion events when configured and possible (a camera with no events to gate on falls back to
  ``always``, warned once and shown in ``status()``); the driver itself knows nothing of what is
  done with them; stream URIs that the camera says expire are asked for again before a reopen;
- the offline monitor: no frame for ``offline_after_s`` raises a camera-offline signal, the first
  frame after it resolves it. The state lives on the object, so it survives ``run`` being
  restarted by the supervisor;
- the events watchdog, when the camera has events at all (read at connect; the reason it has none
  is ``events_unavailable``): a PullPoint subscription renewed at half its lease, recreated after a SOAP
  fault, a camera reboot, or silence past ``event_quiet_s`` while the camera still answers.
  Camera events become signals (tamper, scene change, too blurry/dark/bright, signal loss; motion
  when ``gating = "both"``), each opened signal followed by an update carrying an evidence JPEG
  from the evidence (main) profile.

``run`` raises :class:`edge_core.errors.DriverError` when the ONVIF session cannot be set up, and
:class:`edge_core.errors.DriverAuthError` when authentication fails later; stream trouble never
raises (it is retried and reported as signals).

Why this file is long: one :class:`Camera` owns the ONVIF session, the latest frame and the
event state that its three loops (ingest, offline watch, events) share; apart, each would reach into
the others' state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivers.onvif import (
    CameraEvent,
    EventKind,
    MediaProfile,
    OnvifSession,
    PullPointSubscription,
    Snapshot,
    redact_url,
    with_credentials,
)
from drivers.rtsp import DecodedFrame, FrameSink, IngestStats, PacketTap, RtspIngest
from edge_config.camera import CameraDevice, EventGating, StreamMode
from edge_core.backoff import Backoff
from edge_core.errors import DriverAuthError, DriverError, DriverProtocolError
from edge_core.frames import bgr_planes, planes_to_bgr
from edge_core.signals import Category, Evidence, EvidenceSink, Severity, Signal, SignalSink
from edge_core.tasks import TaskSet

__all__ = ["Camera", "CameraState", "CameraStats", "camera_signal"]

logger = logging.getLogger(__name__)

_MOTION_HOLD_S = 2.0
_MONITOR_TICK_S = 0.25

_EVENT_RULES: dict[EventKind, tuple[str, Category, Severity, str]] = {
    EventKind.MOTION: ("camera-motion", Category.MOTION_IN_ZONE, Severity.MINOR, "camera reports motion"),
    EventKind.TAMPER: ("camera-tamper", Category.CAMERA_TAMPER, Severity.MAJOR, "camera reports tampering"),
    EventKind.SCENE_CHANGE: (
        "camera-scene-change",
        Category.CAMERA_TAMPER,
        Severity.MAJOR,
        "camera reports its view changed",
    ),
    EventKind.TOO_BLURRY: ("camera-too-blurry", Category.CAMERA_TAMPER, Severity.MINOR, "camera image too blurry"),
    EventKind.TOO_DARK: ("camera-too-dark", Category.CAMERA_TAMPER, Severity.MINOR, "camera image too dark"),
    EventKind.TOO_BRIGHT: ("camera-too-bright", Category.CAMERA_TAMPER, Severity.MINOR, "camera image too bright"),
    EventKind.SIGNAL_LOSS: (
        "camera-signal-loss",
        Category.CAMERA_OFFLINE,
        Severity.MAJOR,
        "camera reports video signal loss",
    ),
}


def camera_signal(
    cfg: CameraDevice,
    rule: str,
    active: bool,
    category: Category,
    severity: Severity,
    summary: str,
    *,
    detector: str,
    time: float,
    details: dict[str, str | float | int | bool] | None = None,
    **fields: Any,
) -> Signal:
    """A signal about camera ``cfg``: the one place that fills in what every camera signal carries
    (its department, and its GB/T 28181 identity when configured)."""
    ids = {"national_id": cfg.national_id, "civil_code": cfg.civil_code}
    identity: dict[str, str | float | int | bool] = {k: v for k, v in ids.items() if v}
    return Signal(
        device=cfg.id,
        rule=rule,
        active=active,
        time=time,
        category=category,
        severity=severity,
        summary=summary,
        detector=detector,
        department=cfg.department,
        details={**(details or {}), **identity},
        **fields,
    )


class CameraState(enum.StrEnum):
    """What the status page shows for a camera."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    OFFLINE = "offline"
    STOPPED = "stopped"


@dataclasses.dataclass
class CameraStats:
    """Counters of the events side, for the status page and tests."""

    subscriptions: int = 0
    resubscriptions: int = 0
    events: int = 0
    quiet_resubscriptions: int = 0
    snapshot_failures: int = 0
    last_event_error: str = ""
    subscribe_failures: int = 0
    stream_uri_refreshes: int = 0


class Camera:
    """A supervised ONVIF camera (see the module docstring)."""

    def __init__(
        self,
        config: CameraDevice,
        *,
        password: str | None,
        frame_sink: FrameSink | None = None,
        evidence: EvidenceSink | None = None,
        lease_s: float = 60.0,
        pull_timeout_s: float = 5.0,
        onvif_timeout_s: float = 10.0,
        packet_tap: PacketTap | None = None,
    ) -> None:
        self.config = config
        self.packet_tap = packet_tap
        """Sees the stream's compressed packets (the live view's relay); see :class:`PacketTap`."""
        self._password = password
        self._frame_sink = frame_sink
        self._evidence = evidence
        self.lease_s = lease_s
        self.pull_timeout_s = pull_timeout_s
        self.onvif_timeout_s = onvif_timeout_s
        self.state = CameraState.CONNECTING
        self.stats = CameraStats()
        self.session: OnvifSession | None = None
        self.analysis_profile: MediaProfile | None = None
        self.evidence_profile: MediaProfile | None = None
        self.ingest: RtspIngest | None = None
        self.snapshot_stats = IngestStats()
        # Set by the first run(), not here: the daemon builds its cameras before it compiles the
        # vision kernels (15 s on a first start), and that wait is not the camera being offline.
        self._started: float | None = None
        self._last_frame: float | None = None
        self._offline = False
        self._event_state: dict[tuple[EventKind, str], bool] = {}
        self._active_rules: set[str] = set()
        self._motion_until = 0.0
        self._latest: DecodedFrame | None = None
        self._tasks = TaskSet()
        self.frames_analysed = 0
        """Frames handed to the frame sink (the vision stage), after gating."""
        self.events_unavailable: str | None = None
        """Why the camera's own events are not received (read at connect), None when they are."""
        self._warned: set[str] = set()

    @classmethod
    def from_config(cls, config: CameraDevice, base_dir: Path, **kwargs: object) -> Camera:
        """Build from config, reading the password secret now (OSError names the path, not the value)."""
        password = config.password.read(base_dir).get_secret_value() if config.password else None
        return cls(config, password=password, **kwargs)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.config.id

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def camera_motion(self) -> bool:
        """True while the camera's own motion event holds (plus a short hold after it ends)."""
        return time.monotonic() < self._motion_until or any(
            v for (k, _), v in self._event_state.items() if k is EventKind.MOTION
        )

    @property
    def gating(self) -> EventGating:
        """The gating in force: the configured one, but ``always`` when the camera cannot gate
        (``camera_motion`` with no events to gate on would never analyse a frame)."""
        if self.config.gating is EventGating.CAMERA_MOTION and self.events_unavailable is not None:
            return EventGating.ALWAYS
        return self.config.gating

    @property
    def gating_fallback(self) -> str | None:
        """Why the configured gating is not in force (None when it is)."""
        if self.gating is self.config.gating:
            return None
        return f'cannot gate on the camera\'s own motion: {self.events_unavailable}; every frame is analysed ("always")'

    @property
    def analysis_enabled(self) -> bool:
        """Whether frames are handed to analysis now, given the gating in force."""
        if self.gating is EventGating.CAMERA_MOTION:
            return self.camera_motion
        return True

    # --- what the status page and the live view ask -----------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for the status page and ``/api/v1/cameras`` (no credentials)."""
        cfg = self.config
        ingest = self.ingest.stats if self.ingest is not None else self.snapshot_stats
        info = self.session.info if self.session is not None else None
        last = self._frame_time()
        return {
            "id": cfg.id,
            "name": cfg.name or cfg.id,
            "state": self.state.value,
            "offline": self._offline,
            "host": f"{cfg.host}:{cfg.port}",
            "national_id": cfg.national_id,
            "mode": cfg.stream.mode.value,
            "gating": cfg.gating.value,
            "gating_in_force": self.gating.value,
            "gating_fallback": self.gating_fallback,
            "stream": self.ingest.display_url if self.ingest is not None else None,
            "analysis_profile": self.analysis_profile.token if self.analysis_profile else None,
            "evidence_profile": self.evidence_profile.token if self.evidence_profile else None,
            "device": dataclasses.asdict(info) if info is not None else None,
            "clock_skew_s": round(self.session.clock_skew_s, 1) if self.session is not None else None,
            "last_frame_age_s": round(time.monotonic() - last, 1) if last is not None else None,
            "frames": ingest.frames_decoded,
            "analysed": self.frames_analysed,
            "corrupt_packets": ingest.corrupt_packets,
            "reconnects": ingest.failures,
            "width": ingest.width,
            "height": ingest.height,
            "camera_motion": self.camera_motion,
            "event_subscriptions": self.stats.subscriptions,
            "events": self.stats.events,
            "events_unavailable": self.events_unavailable,
            "last_event_error": self.stats.last_event_error or None,
        }

    @property
    def latest_frame(self) -> DecodedFrame | None:
        """The latest decoded frame (planes read-only; copy to keep them), or None."""
        return self._latest

    async def live_jpeg(self) -> bytes | None:
        """The latest analysed frame as a JPEG (in colour when the stream has it), else the camera's
        own snapshot, else None."""
        latest = self._latest
        if latest is not None and time.time() - latest.t < max(10.0, 2 * self.config.stream.snapshot_interval_s):
            return await asyncio.to_thread(_encode_jpeg, latest)
        session, profile = self.session, self.evidence_profile
        if session is not None and profile is not None:
            with contextlib.suppress(DriverError):
                return await asyncio.to_thread(_as_jpeg, await session.snapshot(profile.token, timeout_s=5.0))
        return None

    # --- run ------------------------------------------------------------------------------

    async def run(self, signal_sink: SignalSink, on_connected: Callable[[], None]) -> None:
        """Connect and watch the camera until cancelled; raise DriverError when ONVIF fails."""
        cfg = self.config
        self.state = CameraState.CONNECTING
        if self._started is None:
            self._started = time.monotonic()
        self._check_offline(signal_sink)
        session = OnvifSession(
            cfg.id,
            cfg.host,
            cfg.port,
            cfg.username,
            self._password,
            allow_set_time=cfg.allow_set_time,
            timeout_s=self.onvif_timeout_s,
        )
        try:
            await session.connect()
        except DriverError:
            self._check_offline(signal_sink)
            raise
        self.session = session
        # from here on every exit closes the session: a stop during a cold kernel warm-up (seconds)
        # used to leave its HTTP sessions open ("Unclosed client session" at exit)
        try:
            self.analysis_profile, self.evidence_profile = session.choose(cfg.profiles.analysis, cfg.profiles.evidence)
            self._read_event_support(session)
            on_connected()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._ingest(session), name=f"gw[{cfg.id}].ingest")
                    tg.create_task(self._monitor(signal_sink), name=f"gw[{cfg.id}].offline")
                    if self.events_unavailable is None:
                        tg.create_task(self._events(session, signal_sink), name=f"gw[{cfg.id}].events")
            except* DriverError as group:
                raise group.exceptions[0] from None
        finally:
            self.session = None
            self._tasks.cancel()
            await session.close()

    def _read_event_support(self, session: OnvifSession) -> None:
        """Decide from what the camera said at connect whether its events are subscribed to, and
        say once (per reason) when that changes what the site file asked for."""
        cfg = self.config
        if not cfg.events:
            self.events_unavailable = "events = false in the site file"
        else:
            self.events_unavailable = session.events_unsupported
        if self.events_unavailable is None or (not cfg.events and self.gating_fallback is None):
            return
        self._say_why_no_events()

    def _say_why_no_events(self) -> None:
        cfg = self.config
        if self.gating_fallback is not None:
            self._warn_once(
                f'camera {cfg.id}: gating = "camera_motion" {self.gating_fallback}; set gating = "always" '
                "in the site file, or enable the camera's ONVIF events"
            )
        else:
            self._warn_once(
                f"camera {cfg.id}: not subscribing to its own events: {self.events_unavailable} "
                "(tamper and motion are still detected on the box)"
            )

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)

    # --- ingest ---------------------------------------------------------------------------

    def _on_frame(self, frame: DecodedFrame) -> None:
        # Worker thread: keep the latest frame for evidence and hand it to analysis if gated open.
        self._latest = frame
        if not self.analysis_enabled:
            return
        if self._frame_sink is not None:
            self.frames_analysed += 1
            self._frame_sink(frame)

    async def _ingest(self, session: OnvifSession) -> None:
        cfg, st = self.config, self.config.stream
        assert self.analysis_profile is not None
        if st.mode is StreamMode.SNAPSHOT:
            await self._poll_snapshots(session, self.analysis_profile.token)
            return
        uri = st.url_override or self.analysis_profile.stream_uri
        if not uri:
            raise DriverProtocolError(
                f"profile {self.analysis_profile.token!r} has no stream URI", device_id=cfg.id, code="no-stream"
            )
        # A local file (the demo without an RTSP server) is replayed in real time, looped.
        replay = "://" not in uri or uri.startswith("file:")
        self.ingest = RtspIngest(
            cfg.id,
            uri if replay else with_credentials(uri, cfg.username, self._password),
            display_url=redact_url(uri),
            keyframes_only=st.mode is StreamMode.KEYFRAMES,
            analysis_fps=st.analysis_fps,
            open_timeout_s=st.open_timeout_s,
            stall_timeout_s=st.stall_timeout_s,
            reconnect_max_s=st.reconnect_max_s,
            replay=replay,
            refresh_url=None if st.url_override or replay else functools.partial(self._fresh_stream_url, session),
        )
        self.ingest.packet_tap = self.packet_tap
        await self.ingest.run(self._on_frame)

    async def _fresh_stream_url(self, session: OnvifSession) -> tuple[str, str] | None:
        """Before the stream is reopened: the analysis profile's stream URI, asked for again when
        the camera said it expires (``Timeout``, ``InvalidAfterConnect``); None to keep the old one."""
        profile = self.analysis_profile
        if profile is None or not profile.stream_uri_expired():
            return None
        try:
            profile = await session.refresh_stream_uri(profile.token)
        except DriverAuthError:
            raise
        except DriverError as exc:
            logger.warning("camera %s: cannot renew its expired stream URI (%s); trying the old one", self.name, exc)
            return None
        self.analysis_profile = profile
        self.stats.stream_uri_refreshes += 1
        if not profile.stream_uri:
            return None
        uri = profile.stream_uri
        return with_credentials(uri, self.config.username, self._password), redact_url(uri)

    async def _poll_snapshots(self, session: OnvifSession, token: str) -> None:
        st = self.config.stream
        stats = self.snapshot_stats
        while True:
            started = time.monotonic()
            try:
                snap = await session.snapshot(token, timeout_s=min(st.open_timeout_s, st.snapshot_interval_s * 4))
            except DriverAuthError:
                raise
            except DriverError as exc:
                stats.failures += 1
                stats.last_error = str(exc)
            else:
                planes = await asyncio.to_thread(_snapshot_planes, snap.data)
                if planes is None:
                    stats.corrupt_packets += 1
                else:
                    now = time.monotonic()
                    stats.frames_decoded += 1
                    stats.frames_delivered += 1
                    stats.last_frame_monotonic = now
                    luma, chroma = planes
                    stats.height, stats.width = luma.shape
                    frame = DecodedFrame(self.config.id, time.time(), luma, True, chroma)
                    await asyncio.to_thread(self._on_frame, frame)
            await asyncio.sleep(max(0.0, st.snapshot_interval_s - (time.monotonic() - started)))

    # --- offline --------------------------------------------------------------------------

    def _frame_time(self) -> float | None:
        stats = self.ingest.stats if self.ingest is not None else self.snapshot_stats
        t = stats.last_frame_monotonic
        if t is not None and (self._last_frame is None or t > self._last_frame):
            self._last_frame = t
        return self._last_frame

    def _check_offline(self, sink: SignalSink) -> None:
        cfg = self.config
        last = self._frame_time()
        now = time.monotonic()
        since = last if last is not None else self._started
        age = 0.0 if since is None else now - since
        if not self._offline and age >= cfg.stream.offline_after_s:
            self._offline = True
            self.state = CameraState.OFFLINE
            last_error = self.ingest.stats.last_error if self.ingest is not None else self.snapshot_stats.last_error
            sink(
                camera_signal(
                    cfg,
                    "camera-offline",
                    True,
                    Category.CAMERA_OFFLINE,
                    Severity.MAJOR,
                    f"no video from the camera for {age:.0f} s",
                    detector="stream-watch",
                    time=time.time(),
                    value=round(age, 1),
                    threshold=cfg.stream.offline_after_s,
                    details={"last_error": last_error[:200]} if last_error else {},
                )
            )
            logger.warning("camera %s: offline (no frame for %.0f s)", cfg.id, age)
        elif self._offline and age < cfg.stream.offline_after_s and last is not None:
            self._offline = False
            self.state = CameraState.STREAMING
            sink(
                camera_signal(
                    cfg,
                    "camera-offline",
                    False,
                    Category.CAMERA_OFFLINE,
                    Severity.MAJOR,
                    "video is back",
                    detector="stream-watch",
                    time=time.time(),
                )
            )
            logger.warning("camera %s: video is back", cfg.id)
        elif not self._offline and last is not None and age < cfg.stream.stall_timeout_s:
            self.state = CameraState.STREAMING

    async def _monitor(self, sink: SignalSink) -> None:
        while True:
            self._check_offline(sink)
            await asyncio.sleep(_MONITOR_TICK_S)

    # --- events ---------------------------------------------------------------------------

    async def _events(self, session: OnvifSession, sink: SignalSink) -> None:
        cfg = self.config
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                sub = await session.subscribe(self.lease_s)
            except DriverAuthError:
                raise
            except DriverError as exc:
                self.stats.last_event_error = str(exc)
                self.stats.subscribe_failures += 1
                if session.events_unsupported is not None:
                    # The camera lists an Events service but refuses PullPoint: asking again
                    # every 30 s for ever would only fill the journal.
                    self.events_unavailable = session.events_unsupported
                    self._say_why_no_events()
                    return
                # Said for the first failure in a row only; the status page keeps the latest.
                level = logging.WARNING if self.stats.subscribe_failures == 1 else logging.DEBUG
                logger.log(level, "camera %s: cannot subscribe to events (%s); retrying", cfg.id, exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.stats.subscribe_failures = 0
            self.stats.subscriptions += 1
            try:
                reason = await self._pull_until_broken(session, sub, sink)
            finally:
                with contextlib.suppress(DriverError):
                    await sub.close()
            self.stats.resubscriptions += 1
            logger.warning("camera %s: event subscription lost (%s); resubscribing", cfg.id, reason)
            await asyncio.sleep(0.2)

    async def _pull_until_broken(self, session: OnvifSession, sub: PullPointSubscription, sink: SignalSink) -> str:
        quiet_s = self.config.event_quiet_s
        last_msg = time.monotonic()
        while True:
            try:
                events = await sub.pull(min(self.pull_timeout_s, quiet_s))
            except DriverAuthError:
                raise
            except DriverProtocolError as exc:
                self.stats.last_event_error = str(exc)
                return f"fault: {exc}"
            except DriverError as exc:
                self.stats.last_event_error = str(exc)
                return f"camera unreachable: {exc}"
            if events:
                last_msg = time.monotonic()
                self._handle_events(events, sink)
                continue
            if time.monotonic() - last_msg < quiet_s:
                continue
            # Silent past the limit: ask for the current state; a live subscription answers.
            try:
                await sub.sync_point()
                events = await sub.pull(min(self.pull_timeout_s, 2.0))
            except DriverError as exc:
                return f"fault after silence: {exc}"
            if events:
                last_msg = time.monotonic()
                self._handle_events(events, sink)
                continue
            try:
                await session.camera_time_skew()
            except DriverError as exc:
                return f"silent, and the camera does not answer: {exc}"
            self.stats.quiet_resubscriptions += 1
            return f"silent for {quiet_s:g} s while the camera answers"

    def _handle_events(self, events: list[CameraEvent], sink: SignalSink) -> None:
        cfg = self.config
        for ev in events:
            self.stats.events += 1
            key = (ev.kind, ev.topic)
            was_active = self._event_state.get(key, False)
            self._event_state[key] = ev.active
            if ev.kind is EventKind.MOTION:
                if was_active and not ev.active:
                    self._motion_until = max(self._motion_until, time.monotonic() + _MOTION_HOLD_S)
                if cfg.gating is not EventGating.BOTH:
                    continue
            rule, category, severity, summary = _EVENT_RULES[ev.kind]
            active = any(v for (k, _), v in self._event_state.items() if k is ev.kind)
            if active == (rule in self._active_rules):
                continue
            if active:
                self._active_rules.add(rule)
            else:
                self._active_rules.discard(rule)
            signal = camera_signal(
                cfg,
                rule,
                active,
                category,
                severity,
                summary if active else summary + ": ended",
                detector="camera-onvif",
                details={"topic": ev.topic, "source": ev.source[:200]},
                time=ev.time,
            )
            sink(signal)
            if active and self._evidence is not None:
                self._tasks.spawn(self._attach_evidence(signal, sink), f"gw[{cfg.id}].evidence")

    async def _attach_evidence(self, signal: Signal, sink: SignalSink) -> None:
        """Fetch the evidence profile's snapshot (else the latest frame) and update the signal."""
        store = self._evidence
        assert store is not None
        jpeg: bytes | None = None
        session, profile = self.session, self.evidence_profile
        if session is not None and profile is not None:
            try:
                jpeg = await asyncio.to_thread(_as_jpeg, await session.snapshot(profile.token, timeout_s=5.0))
            except DriverError as exc:
                self.stats.snapshot_failures += 1
                logger.info("camera %s: evidence snapshot failed (%s); using the latest frame", self.name, exc)
        latest = self._latest
        if jpeg is None and latest is not None:
            jpeg = await asyncio.to_thread(_encode_jpeg, latest)
        if jpeg is None:
            return
        zones = [z.points for z in self.config.vision.zones]
        data = await asyncio.to_thread(_annotate, jpeg, zones, f"{self.name} {signal.rule}")
        evidence: Evidence = await asyncio.to_thread(store.put, data, "image/jpeg", signal.summary)
        if signal.rule in self._active_rules:
            sink(signal.with_evidence(evidence))


def _as_jpeg(snap: Snapshot) -> bytes | None:
    """The snapshot as JPEG: PNG (and whatever else OpenCV reads) is re-encoded; None if unreadable."""
    if snap.content_type == "image/jpeg":
        return snap.data
    import cv2

    img = cv2.imdecode(np.frombuffer(snap.data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return bytes(buf) if ok else None


def _snapshot_planes(jpeg: bytes) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None] | None:
    """A snapshot JPEG as the planes a stream's decoder would give (None if undecodable)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else bgr_planes(bgr)


def _encode_jpeg(frame: DecodedFrame) -> bytes | None:
    """A frame as JPEG, in colour when it came with its 4:2:0 chroma."""
    import cv2

    ok, buf = cv2.imencode(".jpg", planes_to_bgr(*frame.compact()), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return bytes(buf) if ok else None


def _annotate(jpeg: bytes, zones: list[tuple[tuple[float, float], ...]], label: str) -> bytes:
    """Draw the camera's zones and a label on the evidence picture (unchanged if undecodable)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return jpeg
    h, w = img.shape[:2]
    for points in zones:
        poly = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in points], np.int32)
        cv2.polylines(img, [poly], isClosed=True, color=(0, 200, 255), thickness=max(1, w // 400))
    cv2.putText(
        img,
        label,
        (8, 8 + max(12, h // 30)),
        cv2.FONT_HERSHEY_SIMPLEX,
        max(0.4, w / 1600),
        (0, 0, 255),
        max(1, w // 640),
    )
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return bytes(buf) if ok else jpeg
