"""Evidence snapshots: the frame with boxes and zones drawn, or a tampered view beside the learned
one, as JPEG bytes."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_config.vision import Zone
from edge_core.frames import planes_to_bgr
from vision._motion import Box

__all__ = ["draw_comparison", "draw_evidence", "planes_to_bgr"]

_ZONE_COLOURS = {"restricted": (0, 0, 255), "motion": (0, 215, 255), "ignore": (128, 128, 128)}
_BOX_COLOUR = (0, 255, 0)
_PANEL_MAX_HEIGHT = 360  # a comparison's panels: enough to recognise a view, small to send


def draw_evidence(
    image: np.ndarray,
    boxes: Sequence[Box],
    zones: Sequence[Zone] = (),
    *,
    chroma: tuple[np.ndarray, np.ndarray] | None = None,
    quality: int = 85,
) -> bytes:
    """Draw zones (outlines) and boxes on a copy of ``image`` and encode it as JPEG.

    Args:
        image: (H, W) uint8 luma or (H, W, 3) uint8 BGR, the frame the boxes refer to.
        boxes: boxes in source-frame pixels.
        zones: zones in normalised coordinates: restricted red, motion yellow, ignore grey.
        chroma: the luma's 4:2:0 (U, V) planes, for a picture in colour (see :func:`planes_to_bgr`).
        quality: JPEG quality 1..100.

    Raises:
        TypeError: not a uint8 NumPy array.
        ValueError: wrong shape or quality.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        msg = "image must be a uint8 numpy array (luma or BGR); use np.asarray(img, dtype=np.uint8)"
        raise TypeError(msg)
    if image.ndim == 2:
        canvas = planes_to_bgr(image, chroma)
    elif image.ndim == 3 and image.shape[2] == 3:
        canvas = np.ascontiguousarray(image).copy()
    else:
        msg = f"image must be (H, W) luma or (H, W, 3) BGR, got shape {image.shape}"
        raise ValueError(msg)
    h, w = canvas.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    for zone in zones:
        pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in zone.points], np.int32)
        cv2.polylines(canvas, [pts], isClosed=True, color=_ZONE_COLOURS[zone.kind], thickness=thick)
    for b in boxes:
        cv2.rectangle(canvas, (b.x, b.y), (b.x + b.w - 1, b.y + b.h - 1), _BOX_COLOUR, thick)
    return _jpeg(canvas, quality)


def draw_comparison(
    before: np.ndarray,
    now: np.ndarray,
    *,
    chroma: tuple[np.ndarray, np.ndarray] | None = None,
    labels: tuple[str, str] = ("learned view", "now"),
    quality: int = 85,
) -> bytes:
    """Two views side by side, each labelled, as JPEG: for a tamper incident, the view the camera
    had learned (``before``, luma at any size) and the frame now (luma with optional ``chroma``).

    Both panels take the frame's aspect at most 360 rows high; ``before`` is scaled to match.
    """
    for name, plane in (("before", before), ("now", now)):
        if not isinstance(plane, np.ndarray) or plane.dtype != np.uint8:
            msg = f"{name} must be a uint8 numpy array (luma); use np.asarray({name}, dtype=np.uint8)"
            raise TypeError(msg)
        if plane.ndim != 2 or 0 in plane.shape:
            msg = f"{name} must be a non-empty (H, W) luma plane, got shape {plane.shape}"
            raise ValueError(msg)
    h, w = now.shape
    ph = min(h, _PANEL_MAX_HEIGHT)
    pw = max(1, round(w * ph / h))
    panels = []
    for label, img in zip(labels, (planes_to_bgr(before), planes_to_bgr(now, chroma)), strict=True):
        panel = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA if img.shape[0] > ph else cv2.INTER_LINEAR)
        scale = max(0.4, ph / 360)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(panel, (0, 0), (tw + 8, th + 10), (0, 0, 0), -1)
        cv2.putText(panel, label, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    gap = np.full((ph, 4, 3), 255, np.uint8)
    return _jpeg(np.hstack((panels[0], gap, panels[1])), quality)


def _jpeg(canvas: np.ndarray, quality: int) -> bytes:
    if not 1 <= quality <= 100:
        msg = f"quality must be 1..100, got {quality}"
        raise ValueError(msg)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV fails only on out-of-memory
        msg = "JPEG encoding failed"
        raise RuntimeError(msg)
    return buf.tobytes()
