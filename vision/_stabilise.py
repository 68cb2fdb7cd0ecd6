"""Shake compensation for cameras on poles and masts: each frame is aligned to the learned
background before the motion test.

A camera shaking by s pixels changes every pixel on an edge by about s times the edge's slope:
without compensation that floods the mask along every edge, and the shake tolerance of the motion
test (``edge_tolerance``) buys robustness with recall. Here the frame's global shift against the
background is measured and the analysis frame is resampled at the shifted positions. The motion
test then runs in the background's coordinates; boxes are moved back into the frame's. The shift:
two Lucas-Kanade steps at the analysis size (foreground-like pixels left out) from the last
frame's shift; when they do not settle (the camera moved more than about a pixel since), phase
correlation at half the analysis size gives a new start for two more.

Aligning costs an area downscale of the frame into a stored analysis frame (the fused motion
pass otherwise never stores one), the steps and the resampling, and now and then the
correlation: several times the motion test itself. So in the default mode, "auto", it runs only
while the camera shakes: every ``_PROBE_EVERY``-th frame the shift is measured as for aligning;
two probes in a row above ``_SHAKY`` switch aligning on, and ``_CALM_FRAMES`` aligned frames in a
row with a shift under ``_CALM`` (the camera back at rest) switch it off. A camera that settles
somewhere else stays aligned to where it was. "on" aligns every frame, "off" never.

A camera that pans is not shake: its shift grows without bound and the view leaves the fixed
background. :mod:`vision._pan` finds pans and moves the model with the camera instead; while it
does, frames are not aligned (:meth:`ShakeCompensator.released`).
"""

from __future__ import annotations

import cv2
import numpy as np

from vision import _kernels as K

__all__ = ["ShakeCompensator"]

_MIN_RESPONSE = 0.05  # weaker phase-correlation peaks (a global change, a flat view) mean "no shift known"
_OBJECT_DIFF = 25.0  # grey levels: larger differences are objects, not shake, and are left out
_LK_STEPS = 2
_SETTLE_FIRST = 0.75  # px: a first step larger than this means the last shift was a poor start
_SETTLE_LAST = 0.05  # px: a second step larger than this has not settled
_MIN_PIXELS = 0.25  # fraction of the analysis pixels that must be usable (not objects) for a verdict
_PROBE_EVERY = 50  # frames between shake probes while not aligning (2 s at 25 fps)
_SHAKY = 0.3  # px: a probe above this saw shake
_SHAKY_PROBES = 2  # probes in a row that switch aligning on
_CALM = 0.15  # px: aligned frames with a smaller shift are still
_CALM_FRAMES = 250  # still aligned frames in a row that switch aligning off (10 s at 25 fps)


class ShakeCompensator:
    """Align frames of one stream to its learned background; see the module docstring.

    Args:
        frame_shape: (H, W) of the luma planes.
        factor: integer area-downscale factor to the analysis size.
        analysis_shape: (h, w) = (H // factor, W // factor).
        always: align every frame ("on"), else only while shake is measured ("auto").
    """

    def __init__(
        self, frame_shape: tuple[int, int], factor: int, analysis_shape: tuple[int, int], *, always: bool
    ) -> None:
        h, w = analysis_shape
        self._f = factor
        self._hw = analysis_shape
        self._half = (max(1, w // 2), max(1, h // 2))  # cv2 sizes are (width, height)
        self._window = cv2.createHanningWindow(self._half, cv2.CV_32F) if min(h, w) >= 8 else None
        self._small = np.zeros(analysis_shape, dtype=np.float32)
        self._luma = np.zeros(analysis_shape, dtype=np.uint8)
        self._u = np.zeros((self._half[1], self._half[0]), dtype=np.uint8)
        self._v = np.zeros_like(self._u)
        self._chroma_small = np.zeros(self._u.shape, dtype=np.float32)
        self._chroma_420 = (frame_shape[0] // 2, frame_shape[1] // 2)
        self._sums = np.zeros(9, dtype=np.float64)
        self.shift = (0.0, 0.0)
        """Last frame's shift against the background, analysis pixels (x, y): the frame's content
        at p + shift is the background's at p. (0, 0) when the frame was not aligned."""
        self._always = always
        self.active = always
        """Frames are being aligned."""
        self.countdown = _PROBE_EVERY
        """Frames until the next shake probe while not aligning (the caller counts it down)."""
        self._shaky = 0  # probes in a row that saw shake
        self._calm = 0  # aligned frames in a row with a small shift

    def engaged(self, luma: np.ndarray, background: np.ndarray | None) -> bool:
        """Whether to align this frame (then call :meth:`align`). Call it while :attr:`active`,
        and otherwise when :attr:`countdown` has run down to 0: in "auto" mode it then probes for
        shake (two Lucas-Kanade steps from no shift; steps that do not settle, or a shift above
        ``_SHAKY``, saw shake; too few usable pixels say nothing) and winds the countdown up."""
        if not self.active:
            self.countdown = _PROBE_EVERY
            self.shift = (0.0, 0.0)
            if background is not None:
                K.downscale_area(luma, self._f, self._small)
                found = self._refine(background, 0.0, 0.0)
                if found is not None:  # else the view changed wholesale: no verdict either way
                    shaky = not found[2] or max(abs(found[0]), abs(found[1])) > _SHAKY
                    self._shaky = self._shaky + 1 if shaky else 0
                if self._shaky >= _SHAKY_PROBES:
                    self.active = True
                    self._calm = 0
        return self.active

    def released(self) -> None:
        """The model follows a panning camera (:mod:`vision._pan`): frames line up with it, and
        shake is probed afresh once the pan ends."""
        self.shift = (0.0, 0.0)
        self.active = self._always
        self.countdown = _PROBE_EVERY
        self._shaky = 0

    def align(
        self, luma: np.ndarray, chroma: tuple[np.ndarray, np.ndarray] | None, background: np.ndarray | None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """The analysis-size luma and half-size chroma of this frame (uint8, owned by this object,
        valid until the next call), aligned to ``background`` (float32 at analysis size; None
        while none is learned: no alignment)."""
        K.downscale_area(luma, self._f, self._small)
        sx, sy = self._estimate(background) if background is not None else (0.0, 0.0)
        self.shift = (sx, sy)
        if not self._always:
            self._calm = self._calm + 1 if max(abs(sx), abs(sy)) < _CALM else 0
            if self._calm >= _CALM_FRAMES:
                self.active = False  # from the next frame
                self._shaky = 0
        K.shift_sample(self._small, sx, sy, self._luma)
        if chroma is None:
            return self._luma, None
        for plane, out in zip(chroma, (self._u, self._v), strict=True):
            if plane.shape == self._chroma_420:  # 4:2:0: the luma's factor takes it to half the analysis size
                K.downscale_area(plane, self._f, self._chroma_small)
                small: np.ndarray = self._chroma_small
            else:
                small = cv2.resize(plane, self._half, interpolation=cv2.INTER_AREA)
            K.shift_sample(small, sx / 2, sy / 2, out)
        return self._luma, (self._u, self._v)

    def _estimate(self, bg: np.ndarray) -> tuple[float, float]:
        if self._window is None:
            return 0.0, 0.0
        # a shaking camera moves a little from one frame to the next: refine the last shift first,
        # and correlate only when that does not settle
        found = self._refine(bg, *self.shift)
        if found is not None and found[2]:
            return found[0], found[1]
        h, w = self._hw
        half_bg = cv2.resize(bg, self._half, interpolation=cv2.INTER_AREA)
        half_now = cv2.resize(self._small, self._half, interpolation=cv2.INTER_AREA)
        (px, py), response = cv2.phaseCorrelate(half_bg, half_now, self._window)
        if response < _MIN_RESPONSE or abs(px) > w / 16 or abs(py) > h / 16:
            return 0.0, 0.0
        found = self._refine(bg, 2.0 * px, 2.0 * py)
        if found is None or abs(found[0]) > w / 16 or abs(found[1]) > h / 16:
            return 0.0, 0.0
        return found[0], found[1]

    def _refine(self, bg: np.ndarray, sx: float, sy: float) -> tuple[float, float, bool] | None:
        """Lucas-Kanade steps from (sx, sy): the shift, and whether it settled (the steps shrank
        to a small fraction of a pixel, and the shift is under a sixteenth of the view: a shake
        moves it by a few pixels). None when too few pixels are usable (the view changed
        wholesale, as when the lights go on) or the system is singular: no verdict."""
        g = self._sums
        h, w = self._hw
        first = last = 0.0
        for k in range(_LK_STEPS):
            K.lk_step(self._small, bg, sx, sy, _OBJECT_DIFF, g)
            n = g[8]
            if n < _MIN_PIXELS * h * w:
                return None
            # shift and brightness offset together: the offset eliminated, the 2x2 system of the
            # sums taken about their means
            a = g[0] - g[5] * g[5] / n
            b = g[1] - g[5] * g[6] / n
            c = g[2] - g[6] * g[6] / n
            e = g[3] - g[5] * g[7] / n
            f = g[4] - g[6] * g[7] / n
            det = a * c - b * b
            if det <= 1e-6:
                return None
            dx = (c * e - b * f) / det
            dy = (a * f - b * e) / det
            sx -= dx
            sy -= dy
            last = max(abs(dx), abs(dy))
            if k == 0:
                first = last
        settled = first <= _SETTLE_FIRST and last <= _SETTLE_LAST and abs(sx) <= w / 16 and abs(sy) <= h / 16
        return float(sx), float(sy), settled
