"""Pictures as the planes a video decoder gives (Y, and U and V at 4:2:0), both ways.

The stream driver produces planes and the vision stage consumes them; snapshots (JPEG) and
evidence pictures (BGR) cross between the two forms here, in one place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Chroma", "bgr_planes", "planes_to_bgr"]

Chroma = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def bgr_planes(bgr: np.ndarray) -> tuple[npt.NDArray[np.uint8], Chroma | None]:
    """The planes a 4:2:0 decoder gives for a BGR picture (a snapshot JPEG, a test scene), each
    C-contiguous. A picture of odd width or height has no 4:2:0 layout: luma only."""
    import cv2

    h, w = bgr.shape[:2]
    if h % 2 or w % 2:
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), np.uint8), None
    yuv = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), np.uint8)
    q = (h // 2) * (w // 2)
    chroma = yuv[h:].reshape(-1)
    return yuv[:h], (chroma[:q].reshape(h // 2, w // 2), chroma[q:].reshape(h // 2, w // 2))


def planes_to_bgr(luma: np.ndarray, chroma: Chroma | tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A BGR picture of a frame from its planes: in colour from 4:2:0 chroma (U, V of half the
    luma's even height and width), else grey."""
    import cv2

    h, w = luma.shape
    half = (h // 2, w // 2)
    if chroma is not None and h % 2 == 0 and w % 2 == 0 and chroma[0].shape == half == chroma[1].shape:
        i420 = np.concatenate((luma.reshape(-1), chroma[0].reshape(-1), chroma[1].reshape(-1)))
        return np.asarray(cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420), np.uint8)
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(luma), cv2.COLOR_GRAY2BGR), np.uint8)
