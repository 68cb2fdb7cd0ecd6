"""Pixel motion detection: the typed wrapper around the fused numba kernels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import cv2
import numpy as np

from edge_config.vision import MotionSettings, Stabilise, Zone
from vision import _kernels as K
from vision._checks import check_frame_shape, check_plane
from vision._pan import FLOOD as _FLOOD
from vision._pan import PanFollower
from vision._stabilise import ShakeCompensator

__all__ = ["Box", "MotionDetector", "MotionResult", "rasterise_zones"]

_NOISE_INIT = 2.0  # per-pixel noise (mean absolute deviation) assumed before any is measured
_IDLE_FRACTION = 0.02  # frames with less foreground than this teach the frame-wide noise level
_IDLE_ALPHA = 0.05
_ABSORB_ALPHA = 0.05  # learning rate of pixels absorbed after absorb_after_s
_DT_INIT = 1.0 / 25.0  # frame interval assumed until timestamps tell
_NEVER = -1e300  # "no relearning window yet" (finite: the kernels assume no infinities)
# module globals: a global lookup per frame instead of a global plus an attribute lookup
_C_GLOBAL, _S_MASK = K.C_GLOBAL, K.S_MASK
_NDARRAY, _U8 = np.ndarray, np.dtype(np.uint8)
# the results are named tuples, not frozen dataclasses: a frozen dataclass's __init__ sets each
# field through object.__setattr__, which cost several us a frame with its code cold in cache;
# tuple.__new__ builds one in a single C call and the fields stay typed and read-only
_new = tuple.__new__
_NO_ZONES: Mapping[str, Any] = MappingProxyType({})  # shared and read-only, so never copied


class Box(NamedTuple):
    """A moving object's bounding box in source-frame pixels (area in source pixels too)."""

    x: int
    y: int
    w: int
    h: int
    area: int
    cx: float
    cy: float


class MotionResult(NamedTuple):
    """What one frame of motion detection found.

    Attributes:
        t: the frame's timestamp (seconds, as passed to ``process``).
        boxes: moving objects, largest first, in source-frame pixels.
        foreground: fraction of the analysis frame in motion (after clean-up, ignore zones out).
        zone_fractions: per named zone (restricted and motion kinds), its fraction in motion.
        zone_boxes: per named zone, the boxes whose centroid or bottom-centre lies in it.
        global_change: the whole view changed at once (lights, IR switch); no boxes are
            reported and the background relearns for ``relearn_s``.
    """

    t: float
    boxes: tuple[Box, ...]
    foreground: float
    zone_fractions: Mapping[str, float] = _NO_ZONES
    zone_boxes: Mapping[str, tuple[Box, ...]] = _NO_ZONES
    global_change: bool = False


def _moved(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) whole pixels, zeros where nothing moved in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) < h and abs(dx) < w:
        out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = mask[
            max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)
        ]
    return out


def rasterise_zones(zones: Sequence[Zone], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[Zone, ...]]:
    """Rasterise normalised polygons once, at analysis size.

    Returns:
        ``(zone_bits, ignore, named)``: a uint32 (h, w) map with bit z set inside ``named[z]``
        (restricted and motion zones, in order), a uint8 (h, w) map that is 1 inside any ignore
        zone, and the tuple of named zones.
    """
    h, w = shape
    named = tuple(z for z in zones if z.kind != "ignore")
    if len(named) > 32:
        msg = f"at most 32 restricted/motion zones per camera, got {len(named)}"
        raise ValueError(msg)
    bits = np.zeros((h, w), dtype=np.uint32)
    ignore = np.zeros((h, w), dtype=np.uint8)
    scratch = np.zeros((h, w), dtype=np.uint8)
    for zone in zones:
        pts = np.array([[round(x * w), round(y * h)] for x, y in zone.points], dtype=np.int32)
        scratch[:] = 0
        cv2.fillPoly(scratch, [pts], 1)
        if zone.kind == "ignore":
            ignore |= scratch
        else:
            bits |= scratch.astype(np.uint32) << np.uint32(named.index(zone))
    return bits, ignore, named


class MotionDetector:
    """Fused per-pixel motion detection on the luma plane (plus chroma when given).

    One instance per stream; ``process`` is synchronous and CPU-bound, and its kernels release the
    GIL, so the daemon calls it through ``asyncio.to_thread``. Not thread-safe: one frame at a time.

    Args:
        settings: motion settings (the defaults are the parameter set scored on CDnet).
        frame_shape: (height, width) of the luma planes that will be passed to ``process``.
        zones: restricted, motion and ignore polygons in normalised coordinates.
        stabilise: shake compensation, frames aligned to the learned background before the test
            (see :mod:`vision._stabilise`; 0.2 to 0.6 ms a frame while aligning): "auto" while
            shake is measured, "on" always, "off" never. Boxes stay in the frame's coordinates;
            zone fractions are taken in the background's, a shake's few pixels off. Unless
            "off", the background model also follows a camera that pans (see :mod:`vision._pan`).
    """

    def __init__(
        self,
        settings: MotionSettings,
        frame_shape: tuple[int, int],
        zones: Sequence[Zone] = (),
        *,
        stabilise: Stabilise = "auto",
    ) -> None:
        self._shape = check_frame_shape(frame_shape)
        height, width = self._shape
        self._f = max(1, width // settings.analysis_width)
        h, w = max(1, height // self._f), max(1, width // self._f)
        if height < self._f or width < self._f:  # pragma: no cover - f <= width by construction
            msg = f"frame {frame_shape} is smaller than one analysis block"
            raise ValueError(msg)
        self._hw = (h, w)
        self._bg = np.zeros((h, w), dtype=np.float32)
        self._noise = np.full((h, w), _NOISE_INIT, dtype=np.float32)
        self._bg_uv = np.zeros((2, h, w), dtype=np.float32)
        self._fg_count = np.zeros((h, w), dtype=np.float32)
        self._slope = np.zeros((h, w), dtype=np.uint8)
        self._raw = np.zeros((h, w), dtype=np.uint8)
        self._last = np.zeros((h, w), dtype=np.uint8)
        self._prev = np.zeros((h, w), dtype=np.uint8)
        self._samples = np.zeros((h, w, K.SAMPLES), dtype=np.uint8)
        self._texture = np.zeros((h, w, K.SAMPLES), dtype=np.uint16)
        self._mask = np.zeros((h, w), dtype=np.uint8)
        self._colsum = np.zeros(w + 2 * K.MAX_RADIUS, dtype=np.uint8)
        n_runs = h * (w // 2 + 1)
        self._runs = np.zeros((n_runs, 3), dtype=np.int32)
        self._parent = np.zeros(n_runs, dtype=np.int32)
        self._stats = np.zeros(K.N_STATS, dtype=np.float64)
        self._params = np.zeros(K.N_PARAMS, dtype=np.float64)
        self._ctl = np.zeros(K.N_CTL, dtype=np.float64)
        self._dummy = np.zeros((1, 1), dtype=np.uint8)
        self._zone_bits, self._ignore, self._zones = rasterise_zones(zones, (h, w))
        self._zone_area = np.array(
            [max(1, int(np.count_nonzero(self._zone_bits & (1 << z)))) for z in range(len(self._zones))],
            dtype=np.float64,
        )
        self._zone_counts = np.zeros(len(self._zones), dtype=np.int64)
        self._state = (
            self._bg,
            self._noise,
            self._bg_uv,
            self._fg_count,
            self._slope,
            self._raw,
            self._last,
            self._prev,
            self._samples,
            self._texture,
        )
        self._scratch = (self._colsum, self._runs, self._parent)
        self._n_px = float(h * w)
        self._luma_strides = (width, 1)  # with shape (height, width): C-contiguous
        self._settings = settings
        self._boxes = np.zeros((settings.max_boxes * 4, K.BOX_FIELDS), dtype=np.int64)
        self._kernel_args: tuple[object, ...] = ()
        self._chroma_on = True
        self._stabilise = stabilise
        self._stabiliser = (
            ShakeCompensator(self._shape, self._f, self._hw, always=stabilise == "on") if stabilise != "off" else None
        )
        self._pan = PanFollower(self._hw) if stabilise != "off" else None
        self._apply_settings(settings)
        # process() checks every plane before the call: uint8, 2-D, C-contiguous, like _dummy
        self._motion_frame = K.compiled(
            K.motion_frame, self._dummy, self._dummy, self._dummy, True, 0.0, *self._kernel_args
        )
        self.reset()

    @property
    def settings(self) -> MotionSettings:
        """The settings in force."""
        return self._settings

    @property
    def analysis_shape(self) -> tuple[int, int]:
        """(h, w) of the analysis frame."""
        return self._hw

    @property
    def stabilise(self) -> Stabilise:
        """The shake compensation mode."""
        return self._stabilise

    @property
    def stabilising(self) -> bool:
        """Frames are being aligned to the background (always with "on"; with "auto", while the
        camera shakes)."""
        return self._stabiliser is not None and self._stabiliser.active

    @property
    def panning(self) -> bool:
        """The background model follows a panning camera (see :mod:`vision._pan`; not with
        stabilise "off")."""
        return self._pan is not None and self._pan.following

    @property
    def scale(self) -> int:
        """Integer factor from analysis pixels to source pixels."""
        return self._f

    @property
    def foreground_mask(self) -> np.ndarray:
        """Read-only view of the last cleaned 0/1 mask at analysis size, in the frame's coordinates
        (valid until next frame)."""
        mask = self._mask
        if self._stabiliser is not None and self._stabiliser.shift != (0.0, 0.0):
            sx, sy = self._stabiliser.shift
            mask = _moved(mask, round(sy), round(sx))  # frame(q) = mask(q - shift)
        view = mask.view()
        view.flags.writeable = False
        return view

    @property
    def background(self) -> np.ndarray:
        """A copy of the learned background luma at analysis size (float32)."""
        return self._bg.copy()

    def set_settings(self, settings: MotionSettings) -> None:
        """Switch profile (day/night) without losing the learned background.

        The analysis size is fixed at construction; a profile with another ``analysis_width``
        needs a new detector.
        """
        if max(1, self._shape[1] // settings.analysis_width) != self._f:
            msg = "analysis_width differs from the detector's; build a new MotionDetector"
            raise ValueError(msg)
        if settings.max_boxes * 4 > self._boxes.shape[0]:
            self._boxes = np.zeros((settings.max_boxes * 4, K.BOX_FIELDS), dtype=np.int64)
        self._settings = settings
        self._apply_settings(settings)

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """Take new zones without losing the learned background (the technician saved them)."""
        h, w = self._hw
        self._zone_bits, self._ignore, self._zones = rasterise_zones(zones, (h, w))
        self._zone_area = np.array(
            [max(1, int(np.count_nonzero(self._zone_bits & (1 << z)))) for z in range(len(self._zones))],
            dtype=np.float64,
        )
        self._zone_counts = np.zeros(len(self._zones), dtype=np.int64)
        self._apply_settings(self._settings)  # the kernel's arguments hold the ignore mask

    def _apply_settings(self, s: MotionSettings) -> None:
        p = self._params
        K.MotionParams(
            threshold_sigma=s.threshold_sigma,
            noise_alpha=s.noise_alpha,
            absorb_alpha=_ABSORB_ALPHA,
            blur=s.blur,
            weak=s.weak_fraction if s.weak_fraction > 0 else 1e9,
            shadow_lo=s.shadow_min_ratio,
            shadow_hi=s.shadow_max_ratio,
            shadow_chroma=s.shadow_chroma,
            shade=s.shade,
            global_fraction=s.global_change_fraction,
            radius=s.cleanup_radius,
            min_area=s.min_box_area,
            max_boxes=s.max_boxes,
            min_threshold=s.min_threshold,
            floor_gain=s.noise_floor_gain,
            chroma_setting=s.chroma_threshold,
            absorb_s=s.absorb_after_s,
            bg_alpha=s.background_alpha,
            relearn_s=s.relearn_s,
            idle_fraction=_IDLE_FRACTION,
            idle_alpha=_IDLE_ALPHA,
            edge=s.edge_tolerance,
            neighbours=s.neighbour_tolerance,
            samples=s.sample_veto,
            ghosts=s.ghost_reset,
            veil=s.veil,
        ).to_array(p)
        self._chroma_on = s.chroma_threshold > 0
        rest = (p, self._ctl, self._state, self._ignore, self._mask, self._scratch, self._boxes, self._stats)
        self._kernel_args = (self._f, *rest)
        self._aligned_args = (1, *rest)  # an aligned frame comes at the analysis size

    def reset(self) -> None:
        """Forget the background; the next frame is learned as the new one."""
        if self._pan is not None:
            self._pan = PanFollower(self._hw)
        self._forget()

    def _forget(self) -> None:
        K.reset_control(self._ctl, _DT_INIT, _NEVER)
        self._noise[:] = _NOISE_INIT
        self._fg_count[:] = 0
        self._mask[:] = 0

    def process(self, luma: np.ndarray, t: float, chroma: tuple[np.ndarray, np.ndarray] | None = None) -> MotionResult:
        """Analyse one frame.

        Args:
            luma: (H, W) uint8 C-contiguous luma plane, H and W as given at construction.
            t: the frame's timestamp in seconds (monotonic per stream).
            chroma: optional (U, V) uint8 planes of the same frame at any subsampling (4:2:0
                decoders give (H/2, W/2)); they catch objects that differ from the background in
                colour but not in brightness.
        """
        # the checks run on every frame, inline and comparing objects instead of building flags:
        # uint8's dtype is a singleton, and strides (width, 1) mean C-contiguous rows. A miss may
        # still be a valid plane (a dtype equal to uint8's but not it): check_plane decides, and
        # says what is wrong otherwise.
        if (
            type(luma) is not _NDARRAY or luma.dtype is not _U8
            or luma.shape != self._shape or luma.strides != self._luma_strides
        ):  # fmt: skip
            check_plane("luma", luma, self._shape)
        if chroma is None or not self._chroma_on:
            u = v = self._dummy
        else:
            u, v = chroma
            if (
                type(u) is not _NDARRAY or type(v) is not _NDARRAY or u.dtype is not _U8 or v.dtype is not _U8
                or len(sh := u.shape) != 2 or v.shape != sh or u.strides != (sh[1], 1) or v.strides != u.strides
            ):  # fmt: skip
                u = check_plane("chroma[0]", u)
                v = check_plane("chroma[1]", v, u.shape)
        use_chroma = u is not self._dummy
        args = self._kernel_args
        stab = self._stabiliser
        pan = self._pan
        if pan is not None and pan.following:
            if pan.starting:
                pan.starting = False
                self._forget()
            else:
                pan.follow(luma, self._f, (u, v) if use_chroma else None, _NOISE_INIT, self._ctl, self._state)
            if stab is not None:
                stab.released()
        elif stab is not None:
            if not stab.active:
                stab.countdown -= 1  # shake probes are rare: the frames between cost one decrement
            if stab.active or stab.countdown <= 0:
                bg = self._bg if self._ctl[K.C_FRAMES] > 0 and not self._ctl[K.C_GLOBAL] > 0.5 else None
                if stab.engaged(luma, bg):
                    luma, aligned_uv = stab.align(luma, (u, v) if use_chroma else None, bg)
                    if aligned_uv is not None:
                        u, v = aligned_uv
                    args = self._aligned_args
        # the per-frame logic runs in the kernel (frame_control, frame_feedback); the arguments
        # after the frame's own sit in one tuple: one attribute lookup instead of nine
        n_boxes = self._motion_frame(luma, u, v, use_chroma, t, *args)
        if n_boxes == 0 and not self._zones:
            return _new(MotionResult, (t, (), self._stats.item(_S_MASK) / self._n_px, _NO_ZONES, _NO_ZONES, False))
        if pan is not None and n_boxes > 0 and not pan.following and self._stats.item(_S_MASK) > _FLOOD * self._n_px:
            pan.flooded(self._prev, self._last, t, self._ctl.item(K.C_DT))  # a pan floods the view
        if n_boxes < 0:
            return MotionResult(
                t, (), 0.0, dict.fromkeys((z.name for z in self._zones), 0.0), {}, bool(self._ctl[_C_GLOBAL] > 0.5)
            )
        return self._collect(t, n_boxes)

    def _collect(self, t: float, n_boxes: int) -> MotionResult:
        f = self._f
        foreground = self._stats.item(_S_MASK) / self._n_px
        # the kernel has already dropped small components and sorted the rest, largest first; a
        # plain loop, not a comprehension: in Python 3.11 that is one function call more a frame
        boxes: list[Box] = []
        for x0, y0, x1, y1, a, sx, sy in self._boxes[:n_boxes].tolist():
            boxes.append(
                _new(
                    Box,
                    (x0 * f, y0 * f, (x1 - x0) * f, (y1 - y0) * f, a * f * f, (sx / a + 0.5) * f, (sy / a + 0.5) * f),
                )
            )
        if self._stabiliser is not None and self._stabiliser.shift != (0.0, 0.0):
            boxes = self._unshift(boxes)
        boxes_t = tuple(boxes)
        if not self._zones:
            return _new(MotionResult, (t, boxes_t, foreground, _NO_ZONES, _NO_ZONES, False))
        fractions: dict[str, float] = {}
        zone_boxes: dict[str, tuple[Box, ...]] = {}
        K.zone_counts(self._mask, self._zone_bits, self._zone_counts)
        for z, zone in enumerate(self._zones):
            fractions[zone.name] = float(self._zone_counts[z] / self._zone_area[z])
            bit = np.uint32(1 << z)
            inside = tuple(b for b in boxes_t if self._box_in(b, bit))
            if inside:
                zone_boxes[zone.name] = inside
        return MotionResult(t, boxes_t, foreground, fractions, zone_boxes, False)

    def _unshift(self, boxes: list[Box]) -> list[Box]:
        """Boxes found in the background's coordinates, moved into the frame's (clipped to it)."""
        assert self._stabiliser is not None
        height, width = self._shape
        dx, dy = (v * self._f for v in self._stabiliser.shift)
        out = []
        for b in boxes:
            x0, y0 = min(width - 1, max(0, round(b.x + dx))), min(height - 1, max(0, round(b.y + dy)))
            x1, y1 = min(width, max(x0 + 1, round(b.x + b.w + dx))), min(height, max(y0 + 1, round(b.y + b.h + dy)))
            out.append(Box(x0, y0, x1 - x0, y1 - y0, b.area, b.cx + dx, b.cy + dy))
        return out

    def _box_in(self, box: Box, bit: np.uint32) -> bool:
        h, w = self._hw
        f = self._f
        for px, py in ((box.cx, box.cy), (box.x + box.w / 2.0, box.y + box.h - 1)):
            i = min(h - 1, max(0, int(py // f)))
            j = min(w - 1, max(0, int(px // f)))
            if self._zone_bits[i, j] & bit:
                return True
        return False
