"""Synthetic scenes and the tamper scenarios the tests build from them (or from real frames)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from bench._cdnet_eval import jitter_walk, shift_frame

FPS = 25.0
Modifier = Callable[[np.ndarray, int], np.ndarray]


def highway_dir() -> Path:
    """../shared/data/cdnet/highway beside the checkout, or under $GATEWAY_SHARED_DATA."""
    env = os.environ.get("GATEWAY_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    return base / "cdnet" / "highway"


def textured_background(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A static street-like view: smooth texture plus hard-edged blocks (uint8)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    tex = cv2.GaussianBlur(rng.normal(120, 40, (h, w)).astype(np.float32), (0, 0), 2.0)
    img = np.clip(tex, 20, 230)
    for _ in range(12):
        x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        bw, bh = int(rng.integers(5, w // 4)), int(rng.integers(5, h // 4))
        img[y : y + bh, x : x + bw] = float(rng.integers(30, 220))
    return img.astype(np.uint8)


def fine_texture(shape: tuple[int, int], sigma: float = 1.5, seed: int = 0) -> np.ndarray:
    """Fine random texture (grain of ``sigma`` pixels): its edge map changes with every pixel
    of shift, unlike :func:`textured_background`'s blocks (uint8)."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.normal(120, 50, shape).astype(np.float32), (0, 0), sigma)
    return np.clip(tex, 0, 255).astype(np.uint8)


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Sensor noise, so that consecutive frames are never bit-identical."""
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def panning(
    shape: tuple[int, int], still: int, moving: int, after: int, speed: int, seed: int
) -> Iterator[tuple[np.ndarray, bool, bool]]:
    """A camera that looks still at a textured view, then pans right by ``speed`` px a frame
    (the view slides left) following a bright object that stays in the frame at ``PAN_OBJECT``
    (for a 180 x 320 frame: its middle), then stops as the object leaves; yields (luma, panning
    now, object in view)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    wide = textured_background((h, w + moving * speed), seed=seed)
    x = 0
    for i in range(still + moving + after):
        pans = still <= i < still + moving
        x += speed if pans else 0
        frame = wide[:, x : x + w].astype(np.float32)
        if pans:
            frame[PAN_OBJECT] = 245
        yield noisy(frame, rng), pans, pans


PAN_OBJECT = (slice(80, 100), slice(150, 190))  # the followed object: 20 x 40 px


def moving_square(
    bg: np.ndarray, n: int, *, size: int = 12, y: int | None = None, value: int = 250, seed: int = 1
) -> Iterator[tuple[np.ndarray, int]]:
    """Frames with a square crossing left to right at 4 px per frame; yields (luma, x)."""
    rng = np.random.default_rng(seed)
    h, w = bg.shape
    yy = h // 2 if y is None else y
    for i in range(n):
        x = (i * 4) % (w + size) - size
        frame = bg.astype(np.float32)
        x0, x1 = max(0, x), min(w, x + size)
        if x1 > x0:
            frame[yy : yy + size, x0:x1] = value
        yield noisy(frame, rng), x


# Tamper scenarios: frame -> tampered frame. Each takes the clean frame and its index.
def darken(rng: np.random.Generator) -> Modifier:
    """Sudden darkening to near black (lens blacked out, spray paint)."""
    return lambda y, _i: np.clip(y * 0.1 + rng.normal(0, 2, y.shape), 0, 255).astype(np.uint8)


def blur() -> Modifier:
    """Defocus (lens turned, fogged)."""
    return lambda y, _i: cv2.GaussianBlur(y, (0, 0), 3.0)


def shift(fraction: float = 0.2) -> Modifier:
    """The camera turned: the view moves by ``fraction`` of the frame across (and 5/6 of that
    down; a fifth of the width by default)."""

    def run(y: np.ndarray, _i: int) -> np.ndarray:
        h, w = y.shape
        m = np.array([[1, 0, w * fraction], [0, 1, h * fraction * 5 / 6]], dtype=np.float32)
        out: np.ndarray = cv2.warpAffine(y, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        return out

    return run


def shake(amplitude: int, seed: int) -> Modifier:
    """A camera on a swaying mast: every frame moves by whole pixels within +-``amplitude``
    (the random walk of ``python -m bench.cdnet --jitter``), the exposed border repeating the edge."""
    walk = jitter_walk(amplitude, seed)

    def run(y: np.ndarray, _i: int) -> np.ndarray:
        dx, dy = next(walk)
        moved, _, _ = shift_frame(y[:, :, None], None, None, dx, dy)
        out: np.ndarray = moved[:, :, 0]
        return out

    return run


def cover(rng: np.random.Generator) -> Modifier:
    """Something over the lens: a nearly uniform dull image."""
    return lambda y, _i: np.clip(40 + rng.normal(0, 1.5, y.shape), 0, 255).astype(np.uint8)


def lights_on() -> Modifier:
    """Lights switched on: brighter, same structure."""
    return lambda y, _i: np.clip(y.astype(np.float32) * 1.5 + 30, 0, 255).astype(np.uint8)
