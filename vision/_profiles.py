"""Which motion profile (day or night) is in force, and whether a camera is in its IR mode."""

from __future__ import annotations

from datetime import time

import numpy as np

from edge_config.vision import MotionSettings, VisionProfiles
from vision import _kernels as K
from vision._checks import check_plane

__all__ = ["IrModeTracker", "active_profile"]

# A camera in IR mode sends a monochrome picture: its chroma planes are flat (an encoder leaves at
# most a grey level of noise) while the luma still shows the scene. A colour picture's chroma
# spreads by about a sixth of its luma spread at any light level (CDnet highway: 0.16 at full
# light, 0.18 darkened to 12%), so the ratio tells the two apart without a brightness threshold.
_MONO_RATIO = 0.02  # chroma spread (U + V) below this fraction of the luma spread: monochrome
_COLOUR_RATIO = 0.05  # above this: colour (between the two, the state holds)
_MIN_LUMA_SPREAD = 4.0  # flatter pictures (covered, black, fog) say nothing about colour
_SAMPLES_ACROSS = 160  # grid columns measured (every step-th pixel of each plane)


def active_profile(profiles: VisionProfiles, now: time, ir_on: bool | None = None) -> tuple[str, MotionSettings]:
    """Return ``("day"|"night", settings)`` for local time ``now``.

    When the camera's IR state is known (``ir_on`` not None, e.g. from :class:`IrModeTracker`)
    and the schedule follows IR, IR on means night. Otherwise the schedule's night window applies;
    it may wrap past midnight. Pass the result to :meth:`vision.MotionDetector.set_settings` when
    it changes.
    """
    sch = profiles.schedule
    if ir_on is not None and sch.follow_ir:
        night = ir_on
    elif sch.night_start <= sch.night_end:
        night = sch.night_start <= now < sch.night_end
    else:
        night = now >= sch.night_start or now < sch.night_end
    return ("night", profiles.night) if night else ("day", profiles.day)


class IrModeTracker:
    """Whether a camera is in its IR (night, monochrome) mode, seen in its own frames.

    Needs no vendor event: a camera switching its IR-cut filter drops the colour from its
    picture. A new state holds once every measurement for ``hold_s`` seconds agrees, so a grey
    car filling the view or one odd frame switches nothing. :attr:`ir_on` is None until the
    camera has been seen in IR mode once: a camera without IR (always in colour) leaves the day
    and night choice to the clock.

    Measuring costs a strided pass over a few thousand samples of each plane (tens of
    microseconds at 1080p); call :meth:`update` about once a second, not on every frame.
    """

    def __init__(self, hold_s: float = 5.0) -> None:
        if not hold_s >= 0.0:
            msg = f"hold_s must be 0 or more seconds, got {hold_s!r}"
            raise ValueError(msg)
        self.hold_s = float(hold_s)
        self.ir_on: bool | None = None
        self.ratio: float | None = None
        """Chroma spread over luma spread at the last measurement that could tell (None before)."""
        self._seen: bool | None = None  # what the measurements have said since _since
        self._since = 0.0

    def update(self, luma: np.ndarray, chroma: tuple[np.ndarray, np.ndarray], t: float) -> bool:
        """Measure one frame at time ``t`` (seconds); return True when :attr:`ir_on` changed."""
        luma = check_plane("luma", luma)
        u = check_plane("chroma[0]", chroma[0])
        v = check_plane("chroma[1]", chroma[1], u.shape)
        spread = K.plane_spread(luma, max(1, luma.shape[1] // _SAMPLES_ACROSS))
        if spread < _MIN_LUMA_SPREAD:
            self._seen = None
            return False
        step = max(1, u.shape[1] // _SAMPLES_ACROSS)
        self.ratio = (K.plane_spread(u, step) + K.plane_spread(v, step)) / spread
        if self.ratio < _MONO_RATIO:
            mono: bool | None = True
        elif self.ratio > _COLOUR_RATIO:
            mono = False
        else:
            mono = None
        if mono is None or mono != self._seen:
            self._seen = mono
            self._since = t
        if mono is None or mono == self.ir_on or (self.ir_on is None and not mono):
            return False
        if t - self._since < self.hold_s:
            return False
        self.ir_on = mono
        return True
