"""Evidence snapshots: the frame with boxes and zones drawn, as JPEG bytes."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_config.vision import Zone
from vision._motion import Box

__all__ = ["draw_evidence", "planes_to_bgr"]

_ZONE_COLOURS = {"restricted": (0, 0, 255), "motion": (0, 215, 255), "ignore": (128, 128, 128)}
_BOX_COLOUR = (0, 255, 0)


def planes_to_bgr(luma: np.ndarray, chroma: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A BGR picture of a frame from its planes: in colour from 4:2:0 chroma (U, V of half the
    luma's even height and width), else grey."""
    h, w = luma.shape
    half = (h // 2, w // 2)
    if chroma is not None and h % 2 == 0 and w % 2 == 0 and chroma[0].shape == half == chroma[1].shape:
        i420 = np.concatenate((luma.reshape(-1), chroma[0].reshape(-1), chroma[1].reshape(-1)))
        return np.asarray(cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420), np.uint8)
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(luma), cv2.COLOR_GRAY2BGR), np.uint8)


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
    if not 1 <= quality <= 100:
        msg = f"quality must be 1..100, got {quality}"
        raise ValueError(msg)
    h, w = canvas.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    for zone in zones:
        pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in zone.points], np.int32)
        cv2.polylines(canvas, [pts], isClosed=True, color=_ZONE_COLOURS[zone.kind], thickness=thick)
    for b in boxes:
        cv2.rectangle(canvas, (b.x, b.y), (b.x + b.w - 1, b.y + b.h - 1), _BOX_COLOUR, thick)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV fails only on out-of-memory
        msg = "JPEG encoding failed"
        raise RuntimeError(msg)
    return buf.tobytes()
