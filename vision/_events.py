"""Turn per-frame motion results into events with hysteresis, one track per zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_config.vision import EventSettings, Zone
from vision._checks import check_frame_shape
from vision._motion import Box, MotionResult

__all__ = ["BestFrame", "MotionEvents", "VisionEvent"]


@dataclass(frozen=True, slots=True, eq=False)
class BestFrame:
    """The frame of an event with the highest score, for the evidence JPEG.

    ``luma`` and ``chroma`` (None without colour) are private copies, never views of a decoder
    buffer; ``boxes`` are in source pixels.
    """

    t: float
    score: float
    luma: np.ndarray
    boxes: tuple[Box, ...]
    chroma: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class VisionEvent:
    """A transition raised by the vision stage: a condition started (active) or ended.

    Attributes:
        kind: "intrusion", "motion-in-zone" or "motion" (no zones configured) for motion;
            "covered", "defocused", "moved" or "frozen" for camera tamper.
        zone: the zone's name, or None for whole-frame events.
        active: True when the condition starts, False when it ends.
        t: timestamp of the frame that caused the transition.
        score: 0..1; for motion the fraction of the zone (or frame) covered by qualifying
            objects, for tamper how far the measure is past its limit.
        boxes: the objects on that frame, in source pixels.
        best: for motion, the best frame of the event so far (on the closing event: of the
            whole event); None for tamper events or when no luma was given.
    """

    kind: str
    zone: str | None
    active: bool
    t: float
    score: float
    boxes: tuple[Box, ...] = ()
    best: BestFrame | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class _Track:
    kind: str
    zone: Zone | None
    on: int = 0
    off: int = 0
    active: bool = False
    best: BestFrame | None = None


class MotionEvents:
    """Hysteresis over :class:`MotionResult`: on after ``on_frames``, off after ``off_frames``.

    At low analysis rates frames are long: an event also opens after two or more frames in
    motion that span ``on_within_s`` (frames times the frame interval), and closes after quiet
    frames that span ``off_within_s``. At 5 frames a second and more the frame counts decide.

    Each restricted zone opens "intrusion" events, each motion zone "motion-in-zone" events; with
    no zones, the whole frame opens "motion" events. A box counts when its area is at least
    ``min_area_fraction`` of the frame and it lies in the zone (centroid or bottom-centre), and the
    zone's moving fraction reaches the zone's ``min_fraction``.

    Tamper: pass ``suppressed=TamperDetector.analysis_suppressed`` to :meth:`update`. While it is
    True, open events close at once and none open, so a covered or turned camera never raises
    motion incidents.
    """

    def __init__(self, settings: EventSettings, frame_shape: tuple[int, int], zones: Sequence[Zone] = ()) -> None:
        h, w = check_frame_shape(frame_shape)
        self._settings = settings
        self._min_area = settings.min_area_fraction * h * w
        self._frame_area = float(h * w)
        named = [z for z in zones if z.kind != "ignore"]
        if named:
            self._tracks = [_Track("intrusion" if z.kind == "restricted" else "motion-in-zone", z) for z in named]
        else:
            self._tracks = [_Track("motion", None)]
        self._t_last: float | None = None  # the last frame's timestamp
        self._dt = 0.0  # smoothed frame interval (0: not known yet)

    def set_zones(self, zones: Sequence[Zone], t: float) -> list[VisionEvent]:
        """Take new zones (the technician saved them) without losing what is under way: a zone
        that is unchanged keeps its state (an open event stays open); an open event of a zone
        that is gone or redrawn ends now, at ``t``, and its end is returned to be reported."""
        named = [z for z in zones if z.kind != "ignore"]
        old = {(tr.kind, tr.zone): tr for tr in self._tracks}
        wanted = (
            [("intrusion" if z.kind == "restricted" else "motion-in-zone", z) for z in named]
            if named
            else [("motion", None)]
        )
        tracks = [old.pop((kind, zone)) if (kind, zone) in old else _Track(kind, zone) for kind, zone in wanted]
        ended = [self._close(tr, t) for tr in old.values() if tr.active]
        self._tracks = tracks
        return ended

    def best_frame(self, zone: str | None = None) -> BestFrame | None:
        """The best frame so far of the open (or last) event of ``zone`` (None: whole frame)."""
        for tr in self._tracks:
            if (tr.zone.name if tr.zone else None) == zone:
                return tr.best
        return None

    @property
    def active(self) -> tuple[tuple[str, str | None], ...]:
        """(kind, zone) of every open event."""
        return tuple((tr.kind, tr.zone.name if tr.zone else None) for tr in self._tracks if tr.active)

    def update(
        self,
        result: MotionResult,
        luma: np.ndarray | None = None,
        *,
        suppressed: bool = False,
        chroma: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[VisionEvent]:
        """Feed one frame's result; returns the transitions it caused (often none).

        Args:
            result: the detector's result for the frame.
            luma: the frame's luma plane; when given, the best frame of each event is kept.
            suppressed: tamper is active or pending; close everything and open nothing.
            chroma: the frame's (U, V) planes, kept with the best frame for evidence in colour.
        """
        events: list[VisionEvent] = []
        s = self._settings
        if self._t_last is not None and result.t > self._t_last:
            step = min(result.t - self._t_last, 5.0)  # a stall is not the frame rate
            self._dt = step if self._dt == 0.0 else self._dt + 0.2 * (step - self._dt)
        self._t_last = result.t
        dt = self._dt
        for tr in self._tracks:
            name = tr.zone.name if tr.zone else None
            if suppressed:
                if tr.active:
                    events.append(self._close(tr, result.t))
                tr.on = 0
                continue
            if result.global_change:
                continue  # lights or IR switched: neither evidence of motion nor of calm
            if tr.zone is None:
                boxes = tuple(b for b in result.boxes if b.area >= self._min_area)
                present = bool(boxes)
            else:
                boxes = tuple(b for b in result.zone_boxes.get(name or "", ()) if b.area >= self._min_area)
                frac = result.zone_fractions.get(name or "", 0.0)
                present = bool(boxes) and frac >= tr.zone.min_fraction
            score = min(1.0, sum(b.area for b in boxes) / self._frame_area)
            if present:
                tr.off = 0
                tr.on += 1
                if tr.active:
                    self._keep_best(tr, result.t, score, luma, chroma, boxes)
                elif tr.on >= s.on_frames or (tr.on >= 2 and tr.on * dt >= s.on_within_s):
                    tr.active = True
                    tr.best = None
                    self._keep_best(tr, result.t, score, luma, chroma, boxes)
                    events.append(VisionEvent(tr.kind, name, True, result.t, score, boxes, tr.best))
            else:
                tr.on = 0
                if tr.active:
                    tr.off += 1
                    if tr.off >= s.off_frames or tr.off * dt >= s.off_within_s:
                        events.append(self._close(tr, result.t))
        return events

    @staticmethod
    def _keep_best(
        tr: _Track,
        t: float,
        score: float,
        luma: np.ndarray | None,
        chroma: tuple[np.ndarray, np.ndarray] | None,
        boxes: tuple[Box, ...],
    ) -> None:
        if luma is None or (tr.best is not None and tr.best.score >= score):
            return
        kept = None if chroma is None else (np.array(chroma[0], copy=True), np.array(chroma[1], copy=True))
        tr.best = BestFrame(t=t, score=score, luma=np.array(luma, copy=True), boxes=boxes, chroma=kept)

    @staticmethod
    def _close(tr: _Track, t: float) -> VisionEvent:
        tr.active = False
        tr.off = 0
        tr.on = 0
        score = tr.best.score if tr.best else 0.0
        boxes = tr.best.boxes if tr.best else ()
        return VisionEvent(tr.kind, tr.zone.name if tr.zone else None, False, t, score, boxes, tr.best)
