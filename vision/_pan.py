"""Cameras that pan: the background model follows the view.

Why: shake compensation (:mod:`vision._stabilise`) aligns each frame to a fixed background. That
holds a camera that trembles about one place, but a camera that pans (a PTZ camera on patrol, an
operator following a plane) leaves its background behind: the shift grows without bound, the view
slides off the model, and every edge of the scene becomes motion while the object the camera
follows, which stays in place in the frame, is learned. Here the model moves with the camera
instead (motion-compensated background subtraction): every per-pixel state array is moved by the
camera's motion since the last frame, to the nearest pixel, and the part of the view the camera
brought in is learned from the frame as a first frame is (young, it does not fire). The
background then stays still in the model's coordinates, and what moves with the camera moves
against it: it becomes foreground.

The camera's motion between consecutive analysis frames is measured as an affine map, not a
shift: a pan with a tilted or zooming camera shears and scales the view (UCSD landing: a shear
of 1.2% a frame, 4 px across its height). Corners of the last frame (Shi-Tomasi) are tracked
into this one (pyramidal Lucas-Kanade) and the map fitted with RANSAC, which takes the motion
most corners agree on: an overlay (a timestamp, a watermark) stays still while the view slides
under it, and its corners are outvoted, as are an object's. A measurement counts only when most
tracked corners agree and they spread over the view (a large object near the lens is no view).

Measuring costs a millisecond or two at the analysis size, several times the motion test, so a
still camera does not pay for it: it runs only after a frame with more than ``FLOOD`` of its view
in motion (a pan floods the view along every edge), at most every ``_GAP_S`` seconds, a gap that
doubles after each measurement that finds the camera still (up to ``_GAP_MAX_S``: a busy street
is measured every few seconds), and it compares the two last analysis frames the motion test
keeps anyway. ``_RUN`` measurements in a row, on consecutive frames, that move every corner of
the view by more than ``_SPEED`` px a frame, in one direction, and together by more than
``_SPAN`` px are a pan (a shake goes back and forth about one place: over frames in a row it
moves by at most twice its amplitude; an object, however large, leaves part of the view still).
The model learned while the camera began to move is then out of place and smeared, so the next
frame is learned as a new view (what the camera follows is learned with it, and shows once the
view has slid from under it: the ghost left behind is revealed background, see
``vision._kernels.ghost_reset``); from then on each frame is measured against the last and the
model moves with it, at 5 to 10 ms a frame at 468 x 348 (most of it in the tracking). A frame
that cannot be measured moves as the last one did. ``_STILL_FRAMES`` frames in a row moving less
than ``_STILL`` px end the pan, and so do more than ``_BLIND_FRAMES`` in a row that cannot be
measured: the model stays where the camera stopped.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision import _kernels as K

__all__ = ["FLOOD", "PanFollower"]

FLOOD = 0.01  # fraction of the view in motion after which the camera's motion is measured
_GAP_S = 0.02  # seconds at least between measurements after floods (every frame at 25 fps)
_GAP_MAX_S = 4.0  # the gap doubles up to this while the camera is found still
_SPEED = 1.0  # px a frame (analysis size) that count as the camera moving
_SPAN = 8.0  # px (analysis size) a run of moving measurements must add up to: a pan
_RUN = 3  # moving measurements in a row (consecutive frames), in one direction, that make a pan
_STILL = 0.5  # px a frame: the camera at rest
_STILL_FRAMES = 10  # frames at rest in a row that end a pan
_BLIND_FRAMES = 5  # frames in a row that cannot be measured (moved as the last one) that end it
_CORNERS = 120  # corners tracked
_QUALITY = 0.001  # weakest corner kept, of the strongest's score (a bright object's corners outscore a view's)
_MIN_TRACKS = 12  # fewer tracked corners, or fewer agreeing on the motion: no measurement
_AGREE = 0.4  # fraction of the tracked corners that must agree on the motion
_SPREAD = 0.2  # the agreeing corners' spread (standard deviation) across and down, of the view's size
_RANSAC_PX = 1.0  # px: a corner farther than this from where the motion puts it disagrees
_NEVER = -1e300


class PanFollower:
    """Follow one stream's panning camera with its motion model; see the module docstring.

    Args:
        analysis_shape: (h, w) of the motion test's analysis frame.
    """

    def __init__(self, analysis_shape: tuple[int, int]) -> None:
        h, w = analysis_shape
        self._hw = analysis_shape
        self._centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0, 1.0])
        self._small = np.zeros(analysis_shape, dtype=np.float32)
        self._frame = np.zeros(analysis_shape, dtype=np.uint8)
        self._half = np.zeros((max(1, h // 2), max(1, w // 2)), dtype=np.uint8)
        self._src = np.zeros(analysis_shape, dtype=np.int32)
        self._scratch = np.zeros(0, dtype=np.uint8)  # for gather_pixels, made on the first move
        self.following = False
        """The model moves with the camera on every frame."""
        self.starting = False
        """A pan was found: the model, learned while the camera began to move, is out of place
        and smeared, so the next frame is learned as a new view (the caller's part) and
        followed from there."""
        self._next_t = _NEVER
        self._last_t = _NEVER  # the last measurement in a run
        self._gap = _GAP_S
        self._run = 0
        self._span = np.zeros(2)
        self._still = 0
        self._blind = 0  # frames in a row that could not be measured while following
        self._motion = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the last measured while following

    def flooded(self, prev: np.ndarray, last: np.ndarray, t: float, dt: float) -> None:
        """The frame at ``t`` had more than ``FLOOD`` of its view in motion: measure the camera's
        motion from the frame before (``prev``, uint8 at the analysis size) to it (``last``),
        when the gap since the last measurement allows; a run of them (on consecutive frames,
        ``dt`` apart) may start following."""
        if t < self._next_t:
            return
        motion = self.measure(prev, last)
        step = self._step(motion)
        if motion is None or step is None or not self._sweeps(motion, step):
            self._run = 0
            self._span[:] = 0.0
            self._gap = min(2.0 * self._gap, _GAP_MAX_S)
        else:
            # a run is of consecutive frames, so that its moves add up to the camera's: a shake
            # goes back and forth about one place, and over any frames in a row it moves by at
            # most twice its amplitude (moves sampled a few frames apart could add up to more)
            if self._run > 0 and (t - self._last_t > 1.5 * dt or float(self._span @ step) <= 0.0):
                self._run = 0
                self._span[:] = 0.0
            self._last_t = t
            self._run += 1
            self._span += step
            self._gap = _GAP_S
            if self._run >= _RUN and float(np.hypot(*self._span)) > _SPAN:
                self.following = self.starting = True
                self._still = self._blind = 0
                self._motion = motion
        self._next_t = t + self._gap

    def follow(
        self,
        luma: np.ndarray,
        f: int,
        chroma: tuple[np.ndarray, np.ndarray] | None,
        noise_init: float,
        ctl: np.ndarray,
        state: K.MotionState,
    ) -> None:
        """While following: measure the camera's motion from the last analysis frame (``state``'s
        ``last``) to this one (``luma`` area-downscaled by ``f``) and move the model with it (see
        the module docstring); ``chroma`` as the motion test will read it, or None."""
        K.downscale_area(luma, f, self._small)
        np.add(self._small, 0.5, out=self._small)
        self._frame[...] = self._small  # rounded to uint8
        # a pan goes on as it went when a frame cannot be measured (blur, a flat view): a model
        # left behind once would stay behind, each frame measured against the last; but not
        # for long, where nothing says how the camera moves
        last = state[6]  # the analysis frame before this one (the order: vision._kernels.MotionState)
        motion = self.measure(last, self._frame)
        self._blind = self._blind + 1 if motion is None else 0
        if motion is None:
            motion = self._motion
        self._motion = motion
        step = self._step(motion)
        assert step is not None
        self._still = self._still + 1 if float(np.hypot(*step)) < _STILL else 0
        if self._still >= _STILL_FRAMES or self._blind > _BLIND_FRAMES:
            self.following = False
            self._run = 0
            self._span[:] = 0.0
            self._gap = _GAP_S
            return
        self._move(cv2.invertAffineTransform(motion), chroma, noise_init, ctl, state)

    def _move(
        self,
        inv: np.ndarray,
        chroma: tuple[np.ndarray, np.ndarray] | None,
        noise_init: float,
        ctl: np.ndarray,
        state: K.MotionState,
    ) -> None:
        h, w = self._hw
        K.follow_map(inv.astype(np.float64), self._src)
        bg, noise, bg_uv, fg_count, slope, raw, last, prev, samples, texture = state
        if self._scratch.size == 0:
            self._scratch = np.zeros(texture.nbytes, dtype=np.uint8)
        n = h * w
        # one element a pixel: a pixel's sample set (8 bytes) as a uint64, its textures as two
        flat = [p.reshape(n) for p in (bg, noise, bg_uv[0], bg_uv[1], fg_count, raw, last, prev)]
        for sets in (samples.reshape(n, -1).view(np.uint64), texture.reshape(n, -1).view(np.uint64)):
            flat += [sets[:, k] for k in range(sets.shape[1])]
        src = self._src.reshape(n)
        for a in flat:
            K.gather_pixels(a, self._scratch.view(a.dtype)[:n], src)
        u, v = chroma if chroma is not None else (self._frame, self._frame)
        K.renew_pixels(self._frame, u, v, chroma is not None, self._src, noise_init, ctl, state)
        K.background_slope(bg, slope)

    def measure(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """The camera's motion from analysis frame ``a`` to ``b`` (uint8): the 2 x 3 affine map
        from ``a``'s pixels (x, y) to ``b``'s that most tracked corners agree on, or None when
        too few corners track, too few agree, or those that agree do not spread over the view."""
        h, w = self._hw
        # corners found at half the size (a quarter of the cost), tracked at the full
        cv2.resize(a, self._half.shape[::-1], dst=self._half, interpolation=cv2.INTER_AREA)
        found = cv2.goodFeaturesToTrack(self._half, _CORNERS, _QUALITY, max(2.0, w / 80.0), blockSize=3)
        if found is None or len(found) < _MIN_TRACKS:
            return None
        corners = found * np.float32(2.0) + np.float32(0.5)
        moved, status, _err = cv2.calcOpticalFlowPyrLK(a, b, corners, None, winSize=(15, 15), maxLevel=2)
        tracked = status[:, 0] == 1
        n = int(np.count_nonzero(tracked))
        if n < _MIN_TRACKS:
            return None
        motion, inliers = cv2.estimateAffine2D(corners[tracked], moved[tracked], ransacReprojThreshold=_RANSAC_PX)
        if motion is None:
            return None
        agree = corners[tracked][inliers[:, 0] == 1, 0]
        if len(agree) < max(_MIN_TRACKS, _AGREE * n):
            return None
        if agree[:, 0].std() < _SPREAD * w or agree[:, 1].std() < _SPREAD * h:
            return None
        result: np.ndarray = motion
        return result

    def _sweeps(self, motion: np.ndarray, step: np.ndarray) -> bool:
        """``motion`` moves the whole view one way: each corner of the view by more than
        ``_SPEED`` px and along ``step`` (the centre's). An affine map can also fit a large
        object moving beside a still view, by stretching the view between them: then the
        corners on the still side barely move, or move back."""
        h, w = self._hw
        corners = np.array([[0.0, 0.0, 1.0], [w - 1.0, 0.0, 1.0], [0.0, h - 1.0, 1.0], [w - 1.0, h - 1.0, 1.0]])
        moved = corners @ motion.T - corners[:, :2]
        return bool(np.all(np.hypot(moved[:, 0], moved[:, 1]) > _SPEED) and np.all(moved @ step > 0.0))

    def _step(self, motion: np.ndarray | None) -> np.ndarray | None:
        """How far ``motion`` moves the view's centre (x, y), px."""
        if motion is None:
            return None
        moved: np.ndarray = motion @ self._centre - self._centre[:2]
        return moved
