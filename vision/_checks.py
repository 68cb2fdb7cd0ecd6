"""Input checks shared by the public wrappers: each error says how to fix the input."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_frame_shape", "check_plane"]


def check_frame_shape(frame_shape: tuple[int, int]) -> tuple[int, int]:
    """Validate a (height, width) pair and return it as plain ints."""
    if len(frame_shape) != 2:
        msg = f"frame_shape must be (height, width), got {frame_shape!r}; pass luma.shape"
        raise ValueError(msg)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    if h < 1 or w < 1:
        msg = f"frame_shape must be positive, got {frame_shape!r}"
        raise ValueError(msg)
    return h, w


def check_plane(name: str, arr: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Check that ``arr`` is a C-contiguous 2-D uint8 array (of ``shape`` if given).

    Raises:
        TypeError: not a NumPy array, or the wrong dtype.
        ValueError: wrong number of dimensions, wrong shape, or not C-contiguous.
    """
    if not isinstance(arr, np.ndarray):
        msg = f"{name} must be a numpy.ndarray, got {type(arr).__name__}; wrap it with np.asarray()"
        raise TypeError(msg)
    if arr.dtype != np.uint8:
        msg = f"{name} must have dtype uint8, got {arr.dtype}; convert it with np.clip({name}, 0, 255).astype(np.uint8)"
        raise TypeError(msg)
    if arr.ndim != 2:
        hint = " (take the luma plane, e.g. cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))" if arr.ndim == 3 else ""
        msg = f"{name} must be 2-D (height, width), got shape {arr.shape}{hint}"
        raise ValueError(msg)
    if shape is not None and arr.shape != shape:
        msg = (
            f"{name} has shape {arr.shape} but this detector was built for {shape}; "
            "build a new detector when the stream's resolution changes"
        )
        raise ValueError(msg)
    if not arr.flags.c_contiguous:
        msg = f"{name} must be C-contiguous; pass np.ascontiguousarray({name})"
        raise ValueError(msg)
    return arr
