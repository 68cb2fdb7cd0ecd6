"""CDnet evaluation: per-pixel TP/FP/FN over the scored frames, and the peer methods.

Scoring follows changedetection.net (N. Goyette et al., CVPRW 2012; Y. Wang et al., CVPRW 2014):
frames listed in temporalROI.txt, pixels inside ROI.bmp, ground truth 255 positive, 0 and 50
(shadow) negative, 85 (outside ROI) and 170 (unknown) skipped; one F-measure per video from the
summed counts.

:func:`evaluate` can also shake the video (``jitter``): a synthetic stress test of small camera
shake, in memory, in which every frame, its ground truth and the ROI move by the same offset. Or
it can pass cloud shade over it (``shade``): a soft band of shade sweeps across the view, and the
ground truth stays as it is, since shade is not motion.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench import _bgs
from drivers.rtsp import bgr_planes
from edge_config.vision import MotionSettings, Stabilise
from vision import MotionDetector

__all__ = [
    "METHODS",
    "Counts",
    "FrigateStyle",
    "LayoutError",
    "all_methods",
    "evaluate",
    "gateway_method",
    "iter_frames",
    "jitter_walk",
    "min_box_pixels",
    "read_roi",
    "read_temporal_roi",
    "shade_frame",
    "shift_frame",
]

GT_POSITIVE = 255
GT_UNKNOWN = 170
GT_OUTSIDE = 85
FPS = 25.0  # timestamps given to detectors; CDnet frames carry none

Method = Callable[[np.ndarray, float], np.ndarray]  # (bgr, t) -> bool mask (H, W)


class LayoutError(ValueError):
    """A folder that is not usable as a CDnet video, with what is wrong in the message."""


@dataclass
class Counts:
    """Summed per-pixel counts of one method on one video, and its frame-level alarms.

    ``quiet_frames``: scored frames whose ground truth has no foreground in the ROI;
    ``false_alarm_frames``: those of them where the method reports a box (a connected component
    of its mask, inside the ROI, of at least the minimum box size). ``object_frames``: scored
    frames with a ground-truth object (at least the minimum box size of positive pixels);
    ``miss_frames``: those where no reported box touches the object.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    seconds: float = 0.0
    frames: int = 0
    quiet_frames: int = 0
    false_alarm_frames: int = 0
    object_frames: int = 0
    miss_frames: int = 0

    @property
    def false_alarm_rate(self) -> float:
        """Fraction of quiet frames with a reported box (0 when there were none)."""
        return self.false_alarm_frames / self.quiet_frames if self.quiet_frames else 0.0

    @property
    def miss_rate(self) -> float:
        """Fraction of frames with an object where no reported box touches it."""
        return self.miss_frames / self.object_frames if self.object_frames else 0.0

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f_measure(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_temporal_roi(folder: Path) -> tuple[int, int]:
    """First and last scored frame numbers (1-based, inclusive); :class:`LayoutError` if unreadable."""
    path = folder / "temporalROI.txt"
    try:
        first, last = (int(v) for v in path.read_text().split()[:2])
    except (OSError, ValueError) as exc:
        msg = f"{path}: expected two frame numbers 'FIRST LAST' ({exc})"
        raise LayoutError(msg) from None
    if first > last:
        msg = f"{path}: first frame {first} is after the last {last}"
        raise LayoutError(msg)
    return first, last


def read_roi(folder: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The scored region of a (height, width) video: ROI.bmp, else ROI.jpg, as uint8 (0 = outside).

    Public copies of CDnet are not all clean (one has an ROI.bmp of the wrong width): a file that
    is unreadable or of another size is passed over for the next, and when none fits the error
    says what each one was. No ROI file at all: the whole frame counts (None).
    """
    found = []
    for name in ("ROI.bmp", "ROI.jpg", "ROI.png"):
        path = folder / name
        if not path.exists():
            continue
        roi = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if roi is None:
            found.append(f"{name} is not a readable image")
            continue
        if roi.shape != shape:
            found.append(f"{name} is {roi.shape[1]}x{roi.shape[0]}")
            continue
        # a JPEG's edges are blurred by its compression: half-grey is the border
        out: np.ndarray = np.where(roi > 127, 255, 0).astype(np.uint8)
        return out
    if not found:
        return None
    msg = f"{folder}: no ROI file fits the {shape[1]}x{shape[0]} frames ({'; '.join(found)})"
    raise LayoutError(msg)


def iter_frames(folder: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame number, BGR image) for input/in%06d.jpg in order."""
    for path in sorted((folder / "input").glob("in*.jpg")):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            msg = f"cannot read {path}"
            raise LayoutError(msg)
        yield int(path.stem[2:]), img


def min_box_pixels(shape: tuple[int, int], settings: MotionSettings | None = None) -> int:
    """The gateway's smallest reported box (``min_box_area`` analysis pixels) in source pixels:
    the size at which any method's blob counts as a reported box in the frame-level rates."""
    s = settings or MotionSettings()
    f = max(1, shape[1] // s.analysis_width)
    return int(s.min_box_area) * f * f


def _frame_alarm(pred: np.ndarray, roi: np.ndarray | None, pos: np.ndarray, min_px: int) -> tuple[bool, bool, bool]:
    """(object present, a box reported, a box touches the object) for one scored frame."""
    inside = pred if roi is None else pred & (roi > 0)
    has_object = int(np.count_nonzero(pos)) >= min_px
    if not inside.any():
        return has_object, False, False
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inside.view(np.uint8), connectivity=8)
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px) + 1
    if big.size == 0:
        return has_object, False, False
    touched = False
    if has_object:
        hit = np.zeros(n, dtype=bool)
        hit[np.unique(labels[pos])] = True
        touched = bool(hit[big].any())
    return has_object, True, touched


def jitter_walk(amplitude: int, seed: int) -> Iterator[tuple[int, int]]:
    """Endless integer offsets (dx, dy) of a shaking camera, one per frame, within +-``amplitude``.

    A smoothed random walk, like a pole swaying in the wind: each frame keeps 0.7 of the last
    offset and adds Gaussian noise of 0.6 * amplitude per axis, clipped and rounded. The same
    ``seed`` gives the same offsets.
    """
    rng = np.random.default_rng(seed)
    pos = np.zeros(2)
    while True:
        pos = np.clip(0.7 * pos + rng.normal(0.0, 0.6 * amplitude, 2), -amplitude, amplitude)
        dx, dy = np.round(pos).astype(int)
        yield int(dx), int(dy)


def shift_frame(
    bgr: np.ndarray, gt: np.ndarray | None, roi: np.ndarray | None, dx: int, dy: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``bgr``, ground truth and ROI moved by (dx, dy) pixels together.

    The image repeats its edge pixels into the border the shift exposes, as a camera would show
    more of the scene there; the ground truth there becomes 85 (outside ROI) and the ROI 0, so
    the border is never scored.
    """
    h, w = bgr.shape[:2]
    pad = max(abs(dx), abs(dy))
    # out[y, x] = plane[y - dy, x - dx], read from a copy padded by ``pad`` on every side
    rows = slice(pad - dy, pad - dy + h)
    cols = slice(pad - dx, pad - dx + w)
    out = np.ascontiguousarray(np.pad(bgr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")[rows, cols])

    def move(plane: np.ndarray | None, border: int) -> np.ndarray | None:
        if plane is None:
            return None
        return np.pad(plane, pad, mode="constant", constant_values=border)[rows, cols]

    return out, move(gt, GT_OUTSIDE), move(roi, 0)


SHADE_PERIOD = 250  # frames: a band crosses in 180 frames (7.2 s at 25 fps), then 70 without
SHADE_CROSSING = 180
SHADE_WIDTH = 0.4  # of the frame's width; the middle half of the band is at full depth


def shade_frame(bgr: np.ndarray, k: int, depth: float) -> np.ndarray:
    """Frame ``k`` (in file order) with the passing cloud shade of the ``shade`` stress test.

    A vertical band ``SHADE_WIDTH`` of the frame wide sweeps left to right once every
    ``SHADE_PERIOD`` frames, taking ``SHADE_CROSSING`` of them. In its middle the light falls by
    ``depth`` (0.3: 30% darker), easing to none over a quarter of the band on each side. Every
    channel is scaled alike: the hue stays, as under a thin cloud.
    """
    w = bgr.shape[1]
    phase = k % SHADE_PERIOD
    if phase >= SHADE_CROSSING:
        return bgr
    half = SHADE_WIDTH * w / 2
    centre = -half + (w + 2 * half) * phase / SHADE_CROSSING
    x = np.arange(w, dtype=np.float32)
    cover = np.clip(2.0 * (1.0 - np.abs(x - centre) / half), 0.0, 1.0)  # 1 in the middle half
    gain = 1.0 - depth * cover
    out: np.ndarray = np.clip(bgr * gain[None, :, None] + 0.5, 0, 255).astype(np.uint8)
    return out


def split_yuv420(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planes of the I420 frame a decoder would give for ``bgr`` (even sizes), as the daemon
    makes them from a snapshot."""
    y, chroma = bgr_planes(bgr)
    if chroma is None:
        msg = f"I420 needs even sizes, got {bgr.shape[1]}x{bgr.shape[0]}"
        raise ValueError(msg)
    return y, chroma[0], chroma[1]


def gateway_method(
    shape: tuple[int, int], settings: MotionSettings | None = None, *, stabilise: Stabilise = "auto"
) -> Method:
    """Our detector with its default settings (shake compensation "auto"); luma and chroma planes
    in, full-size mask out."""
    det = MotionDetector(settings or MotionSettings(), shape, stabilise=stabilise)

    def run(bgr: np.ndarray, t: float) -> np.ndarray:
        y, u, v = split_yuv420(bgr)
        det.process(y, t, (u, v))
        mask = det.foreground_mask
        if det.scale != 1:
            mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
            return mask.astype(bool)
        out = np.zeros(shape, dtype=bool)
        h, w = mask.shape
        out[:h, :w] = mask.astype(bool)
        return out

    return run


def _subtractor(sub: cv2.BackgroundSubtractor) -> Method:
    def run(bgr: np.ndarray, t: float) -> np.ndarray:
        fg = sub.apply(bgr)
        fg = cv2.medianBlur(np.where(fg == 255, 255, 0).astype(np.uint8), 5)
        return fg > 0

    return run


class FrigateStyle:
    """The Frigate-style pipeline of ../shared/BRIEF.md, in OpenCV.

    Luma area-resized to ``rows`` rows, contrast stretched between the 4th and 96th percentiles,
    Gaussian blur, absdiff against a float running average (alpha 0.01; 0.2 while recalibrating),
    threshold 30, one dilation, external contours with area > 10; recalibrates when more than 80%
    of the frame changes. Percentiles come from a 256-bin histogram (cheaper than np.percentile).
    """

    def __init__(self, shape: tuple[int, int], rows: int | None = 100) -> None:
        h, w = shape
        if rows is None or rows >= h:
            self.size = (w, h)
        else:
            self.size = (max(1, round(w * rows / h)), rows)
        self.avg: np.ndarray | None = None
        self.calibrating = True
        self.motion_frames = 0
        self.mask = np.zeros((self.size[1], self.size[0]), dtype=np.uint8)
        n = self.size[0] * self.size[1]
        self._lo_rank = 0.04 * n
        self._hi_rank = 0.96 * n
        self._ramp = np.arange(256, dtype=np.float32)

    def process(self, luma: np.ndarray) -> list[tuple[int, int, int, int]]:
        """One frame; returns boxes (x, y, w, h) at the pipeline's size; ``mask`` holds the mask."""
        small = (
            luma
            if self.size == (luma.shape[1], luma.shape[0])
            else cv2.resize(luma, self.size, interpolation=cv2.INTER_AREA)
        )
        hist = cv2.calcHist([small], [0], None, [256], [0, 256]).ravel().cumsum()
        lo = int(np.searchsorted(hist, self._lo_rank))
        hi = int(np.searchsorted(hist, self._hi_rank))
        if lo < hi:
            lut = np.clip((self._ramp - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
            small = cv2.LUT(small, lut)
        small = cv2.GaussianBlur(small, (5, 5), 1.0)
        if self.avg is None:
            self.avg = small.astype(np.float32)
        delta = cv2.absdiff(small, cv2.convertScaleAbs(self.avg))
        _, thresh = cv2.threshold(delta, 30, 255, cv2.THRESH_BINARY)
        dilated = cv2.dilate(thresh, None, iterations=1)  # type: ignore[call-overload]
        contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        total = 0.0
        for c in contours:
            area = cv2.contourArea(c)
            total += area
            if area > 10:
                x, y, w, h = cv2.boundingRect(c)
                boxes.append((x, y, w, h))
        pct = total / (self.size[0] * self.size[1])
        if self.calibrating and pct < 0.05 and len(boxes) <= 4:
            self.calibrating = False
        if pct > 0.8:
            self.calibrating = True
        alpha = 0.2 if self.calibrating else 0.01
        if boxes:
            self.motion_frames += 1
            if self.motion_frames >= 10:
                cv2.accumulateWeighted(small, self.avg, alpha)
        else:
            self.motion_frames = 0
            cv2.accumulateWeighted(small, self.avg, alpha)
        self.mask = dilated
        return boxes


def _frigate(shape: tuple[int, int]) -> Method:
    pipe = FrigateStyle(shape)

    def run(bgr: np.ndarray, t: float) -> np.ndarray:
        pipe.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        return cv2.resize(pipe.mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0

    return run


METHODS: dict[str, Callable[[tuple[int, int]], Method]] = {
    "gateway": gateway_method,
    "mog2": lambda _s: _subtractor(cv2.createBackgroundSubtractorMOG2()),
    "knn": lambda _s: _subtractor(cv2.createBackgroundSubtractorKNN()),
    "knn-tuned": lambda _s: _subtractor(
        cv2.createBackgroundSubtractorKNN(history=200, dist2Threshold=400.0, detectShadows=False)
    ),
    "frigate-style": _frigate,
    # the same detector aligning every frame to its background first (shake compensation "on")
    "gateway-stabilised": lambda shape: gateway_method(shape, stabilise="on"),
}


def all_methods() -> dict[str, Callable[[tuple[int, int]], Method]]:
    """:data:`METHODS`, then bgslibrary's when pybgs is installed (see :mod:`bench._bgs`)."""
    out = dict(METHODS)
    if _bgs.available():
        for name, cls_name in _bgs.BGS_METHODS:
            out[name] = _bgs.bgs_method(cls_name)
    return out


def evaluate(
    folder: Path,
    methods: dict[str, Method] | None = None,
    jitter: tuple[int, int] | None = None,
    shade: float = 0.0,
    makers: dict[str, Callable[[tuple[int, int]], Method]] | None = None,
) -> dict[str, Counts]:
    """Run every method over the video once, in the same pass, and score the temporal ROI.

    ``jitter`` = (amplitude, seed) shakes the video first: frame ``k`` (in file order), its ground
    truth and the ROI move by the ``k``-th offset of :func:`jitter_walk` (see :func:`shift_frame`).
    ``shade`` > 0 passes cloud shade of that depth over the frames (see :func:`shade_frame`).
    ``methods`` are ready runners; else ``makers`` (default :func:`all_methods`) build them for
    the video's size. A folder that cannot be scored raises :class:`LayoutError`.
    """
    first, last = read_temporal_roi(folder)
    roi_file: np.ndarray | None = None
    min_px = 0
    counts: dict[str, Counts] = {}
    runners: dict[str, Method] | None = methods
    offsets = jitter_walk(*jitter) if jitter else None
    roi_shape = (0, 0)
    for k, (num, bgr) in enumerate(iter_frames(folder)):
        if num > last:
            break
        if shade > 0.0:
            bgr = shade_frame(bgr, k, shade)
        shape = (bgr.shape[0], bgr.shape[1])
        if runners is None:
            runners = {name: make(shape) for name, make in (makers or all_methods()).items()}
        if min_px == 0:
            roi_file = read_roi(folder, shape)
            min_px = min_box_pixels(shape)
        elif shape != roi_shape:
            msg = f"{folder}: frame {num} is {shape[1]}x{shape[0]}, the first was {roi_shape[1]}x{roi_shape[0]}"
            raise LayoutError(msg)
        roi_shape = shape
        if not counts:
            counts = {name: Counts() for name in runners}
        t = num / FPS
        gt = None
        valid = pos = None
        if num >= first:
            gt = cv2.imread(str(folder / "groundtruth" / f"gt{num:06d}.png"), cv2.IMREAD_GRAYSCALE)
            if gt is None:
                msg = f"{folder}: missing or unreadable ground truth groundtruth/gt{num:06d}.png"
                raise LayoutError(msg)
            if gt.shape != shape:
                msg = (
                    f"{folder}: ground truth of frame {num} is {gt.shape[1]}x{gt.shape[0]}, "
                    f"the frame {shape[1]}x{shape[0]}"
                )
                raise LayoutError(msg)
        roi = roi_file
        if offsets is not None:
            bgr, gt, roi = shift_frame(bgr, gt, roi, *next(offsets))
        if gt is not None:
            valid = (gt != GT_UNKNOWN) & (gt != GT_OUTSIDE)
            if roi is not None:
                valid &= roi > 0
            pos = gt == GT_POSITIVE
        for name, run in runners.items():
            t0 = time.perf_counter()
            pred = run(bgr, t)
            c = counts[name]
            c.seconds += time.perf_counter() - t0
            c.frames += 1
            if valid is not None and pos is not None:
                pv = pred & valid
                c.tp += int(np.count_nonzero(pv & pos))
                c.fp += int(np.count_nonzero(pv & ~pos))
                c.fn += int(np.count_nonzero(~pred & valid & pos))
                has_object, boxed, touched = _frame_alarm(pred, roi, pos & valid, min_px)
                if has_object:
                    c.object_frames += 1
                    c.miss_frames += 0 if touched else 1
                elif not (pos & valid).any():
                    c.quiet_frames += 1
                    c.false_alarm_frames += 1 if boxed else 0
    if methods is None and runners is not None:
        with _bgs.silenced():  # bgslibrary's destructors print their names
            runners.clear()
            gc.collect()
    if not counts:
        msg = f"{folder}: no input frames up to frame {last} (input/in%06d.jpg)"
        raise LayoutError(msg)
    return counts
