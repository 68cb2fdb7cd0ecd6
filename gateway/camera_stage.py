"""The on-box vision stage of one camera: decoded frames in, signals (with evidence) out.

The camera driver hands every frame it lets through (see its ``gating``) to ``process``, in the
stream's worker thread; the numba kernels release the GIL there, so cameras analyse in parallel
and the event loop never waits on a frame. Signals leave through ``emit``, which must be
thread-safe (the gateway passes one that hops onto the event loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

import vision
from drivers.camera import camera_signal
from drivers.rtsp import DecodedFrame
from edge_config.camera import CameraDevice
from edge_core.frames import Chroma
from edge_core.ratelimit import RateLimitedLogger
from edge_core.signals import Category, Evidence, EvidenceSink, Severity, Signal

__all__ = ["CameraVision"]

logger = logging.getLogger(__name__)
_errors_log = RateLimitedLogger(logger, 60.0)

_VISION_RULES: dict[str, tuple[Category, Severity]] = {
    "intrusion": (Category.INTRUSION, Severity.MAJOR),
    "motion-in-zone": (Category.MOTION_IN_ZONE, Severity.MINOR),
    "motion": (Category.MOTION_IN_ZONE, Severity.MINOR),
}
_PROFILE_CHECK_S = 60.0
_IR_CHECK_S = 1.0  # how often a camera's picture is measured for its IR mode


class CameraVision:
    """The vision stage of one camera, run in its ingest thread.

    Each frame goes through :class:`vision.TamperDetector`, :class:`vision.MotionDetector` and
    :class:`vision.MotionEvents` (built on the first frame, rebuilt if the frame size changes).
    The day/night profile is re-checked every minute, and at once when the picture turns
    monochrome or back to colour (the camera's IR mode, measured once a second by
    :class:`vision.IrModeTracker`). Every transition becomes a :class:`Signal` handed to ``emit``.
    An opening motion event carries its best frame as an evidence JPEG with boxes and zones drawn
    (:func:`vision.draw_evidence`); a raised tamper condition, the learned view beside the frame
    that raised it (:func:`vision.draw_comparison`).
    """

    def __init__(
        self, config: CameraDevice, emit: Callable[[Signal], None], evidence: EvidenceSink | None = None
    ) -> None:
        self.config = config
        self._emit = emit
        self._evidence = evidence
        self._shape: tuple[int, int] | None = None
        self._det: vision.MotionDetector | None = None
        self._events: vision.MotionEvents | None = None
        self._tamper: vision.TamperDetector | None = None
        self.profile = ""
        """The motion profile in force, "day" or "night" ("" before the first frame)."""
        self._profile_checked = 0.0
        self.ir = vision.IrModeTracker()
        self._ir_checked = -_IR_CHECK_S
        self.frames = 0
        self.errors = 0
        self._new_config: CameraDevice | None = None
        self._last_motion: tuple[float, tuple[int, int], tuple[vision.Box, ...]] | None = None

    @property
    def stabilising(self) -> bool:
        """Frames are being aligned against camera shake (see ``vision.stabilise``)."""
        return self._det is not None and bool(self._det.stabilising)

    @property
    def panning(self) -> bool:
        """The motion model follows the camera as it pans (see ``vision._pan``); the page shows
        it, so a technician sees a fixed camera that someone is turning."""
        return self._det is not None and bool(self._det.panning)

    def status(self) -> dict[str, Any]:
        """What the status page shows of the stage: which motion settings are in force, the IR
        mode the picture shows (None: never seen), whether the motion test aligns against shake or
        follows a pan, and frames the stage failed on."""
        return {
            "vision_profile": self.profile,
            "ir_mode": self.ir.ir_on,
            "stabilising": self.stabilising,
            "panning": self.panning,
            "vision_errors": self.errors,
        }

    def motion_json(self) -> dict[str, Any]:
        """The moving objects of the last analysed frame, in 0..1 of the frame (the zone editor
        draws them and shows which the zones being drawn would report), and the smallest object
        the events count (``min_area_fraction``, of the frame)."""
        last = self._last_motion
        boxes: list[dict[str, float]] = []
        t = None
        if last is not None:
            t, (h, w), found = last
            boxes = [
                {
                    "x": b.x / w,
                    "y": b.y / h,
                    "w": b.w / w,
                    "h": b.h / h,
                    "cx": b.cx / w,
                    "cy": b.cy / h,
                    "area": b.area / (w * h),
                }
                for b in found
            ]
        return {"t": t, "boxes": boxes, "min_area_fraction": self.config.vision.events.min_area_fraction}

    def reconfigure(self, config: CameraDevice) -> None:
        """Take new settings of this camera from the event loop (a reload after zones were saved).

        Zones apply at the next frame, in the ingest thread, without losing the learned background
        or an open event of a zone that did not change; any other change rebuilds the stage then.
        """
        self._new_config = config

    def _apply_config(self, t: float) -> list[vision.VisionEvent]:
        new, self._new_config = self._new_config, None
        if new is None or new == self.config:
            return []
        old, self.config = self.config, new
        if new.vision.model_copy(update={"zones": old.vision.zones}) != old.vision:
            self._shape = None  # more than the zones: build afresh at this frame
            return []
        if self._det is None or self._events is None:
            return []
        self._det.set_zones(new.vision.zones)
        logger.info("camera %s: %d zones in force", new.id, len(new.vision.zones))
        return self._events.set_zones(new.vision.zones, t)

    def process(self, frame: DecodedFrame) -> None:
        """Analyse one frame (in the ingest thread); never raises.

        A frame the stage cannot take is counted and logged with its traceback (at most once a
        minute per camera): it is a bug or a bad frame, never a reason to reopen the stream.
        """
        try:
            self._process(frame)
        except Exception:
            self.errors += 1
            _errors_log.exception(self.config.id, "camera %s: the vision stage failed on a frame", self.config.id)

    def _build(self, shape: tuple[int, int]) -> None:
        vs = self.config.vision
        self.profile, settings = vision.active_profile(vs.profiles, datetime.now().time(), self.ir.ir_on)
        self._profile_checked = time.monotonic()
        self._det = vision.MotionDetector(settings, shape, vs.zones, stabilise=vs.stabilise)
        self._events = vision.MotionEvents(vs.events, shape, vs.zones)
        self._tamper = vision.TamperDetector(vs.tamper, shape)
        self._shape = shape

    def _process(self, frame: DecodedFrame) -> None:
        luma, chroma = frame.compact()
        ended = self._apply_config(frame.t) if self._new_config is not None else []
        shape = (int(luma.shape[0]), int(luma.shape[1]))
        if shape != self._shape:
            self._build(shape)
        det, events, tamper = self._det, self._events, self._tamper
        assert det is not None and events is not None and tamper is not None
        now = time.monotonic()
        ir_changed = False
        if chroma is not None and now - self._ir_checked >= _IR_CHECK_S:
            self._ir_checked = now
            ir_changed = self.ir.update(luma, chroma, now)
            if ir_changed:
                logger.info("camera %s: picture in %s mode", self.config.id, "IR" if self.ir.ir_on else "colour")
        if ir_changed or now - self._profile_checked > _PROFILE_CHECK_S:
            self._profile_checked = now
            name, settings = vision.active_profile(self.config.vision.profiles, datetime.now().time(), self.ir.ir_on)
            if name != self.profile:
                self.profile = name
                det.set_settings(settings)
        self.frames += 1
        out = ended + tamper.process(luma, frame.t)
        motion = det.process(luma, frame.t, chroma)
        self._last_motion = (motion.t, shape, motion.boxes)  # one reference: the page reads it
        out += events.update(motion, luma, suppressed=tamper.analysis_suppressed, chroma=chroma)
        for ev in out:
            self._emit(self._signal(ev, luma, chroma))

    def _signal(self, ev: vision.VisionEvent, luma: np.ndarray, chroma: Chroma | None) -> Signal:
        cfg = self.config
        if ev.kind in _VISION_RULES:
            category, severity = _VISION_RULES[ev.kind]
            rule, detector = ev.kind, "vision-motion"
            where = f" in zone {ev.zone!r}" if ev.zone else ""
            summary = f"{ev.kind.replace('-', ' ')}{where}" + ("" if ev.active else ": ended")
        else:
            category, severity = Category.CAMERA_TAMPER, Severity.MAJOR
            rule, detector = f"tamper-{ev.kind}", "vision-tamper"
            summary = f"camera {ev.kind}" + ("" if ev.active else ": ended")
        evidence = self._store_evidence(ev, luma, chroma, summary) if ev.active else None
        return camera_signal(
            cfg,
            rule,
            ev.active,
            category,
            severity,
            summary,
            detector=detector,
            time=ev.t,
            zone=ev.zone,
            score=round(float(ev.score), 4),
            evidence=evidence,
            details={"boxes": len(ev.boxes), "profile": self.profile},
        )

    def _store_evidence(
        self, ev: vision.VisionEvent, luma: np.ndarray, chroma: Chroma | None, summary: str
    ) -> Evidence | None:
        if self._evidence is None:
            return None
        try:
            jpeg: bytes | None = None
            if ev.best is not None:  # motion: its best frame, boxes drawn
                best = ev.best
                jpeg = vision.draw_evidence(best.luma, best.boxes, self.config.vision.zones, chroma=best.chroma)
            elif ev.kind not in _VISION_RULES and self._tamper is not None:
                # tamper: the learned view beside the frame that raised it
                jpeg = vision.draw_comparison(self._tamper.reference_view(), luma, chroma=chroma)
            return None if jpeg is None else self._evidence.put(jpeg, "image/jpeg", summary)
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("camera %s: evidence not stored: %s", self.config.id, exc)
            return None
