"""Compile (or load from the numba cache) every kernel once, before the first frame arrives."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from edge_config.vision import MotionSettings, TamperSettings, Zone
from vision._motion import MotionDetector
from vision._profiles import IrModeTracker
from vision._tamper import TamperDetector

__all__ = ["warm_up"]


def warm_up(progress: Callable[[str], None] | None = None) -> float:
    """Run every kernel once on a tiny frame with the dtypes the daemon uses.

    The compiled code is cached in ``$NUMBA_CACHE_DIR`` (set it to a writable persistent folder,
    e.g. the state directory under systemd); a source change rebuilds it. Cold, this takes
    seconds; cached, well under one.

    Args:
        progress: called with one human-readable line per step (e.g. ``print``).

    Returns:
        Seconds spent.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _line: None)
    say("vision: compiling motion kernels (cached after the first start)...")
    rng = np.random.default_rng(0)
    shape = (24, 32)
    zone = Zone(name="warm", kind="restricted", points=((0.1, 0.1), (0.9, 0.1), (0.5, 0.9)))
    det = MotionDetector(MotionSettings(analysis_width=16), shape, (zone,))
    for i in range(3):
        luma = rng.integers(0, 256, shape, dtype=np.uint8)
        uv = rng.integers(0, 256, (shape[0] // 2, shape[1] // 2), dtype=np.uint8)
        det.process(luma, i * 0.04, (uv, uv.copy()))
        det.process(luma, i * 0.04 + 0.02)
    # shake compensation aligning every frame (its kernels for both chroma paths), and the IR
    # tracker, which the daemon runs on every camera with colour
    wide = (32, 48)
    steady = MotionDetector(MotionSettings(analysis_width=24), wide, stabilise="on")
    for i in range(3):
        luma = rng.integers(0, 256, wide, dtype=np.uint8)
        uv = rng.integers(0, 256, (wide[0] // 2, wide[1] // 2), dtype=np.uint8)
        steady.process(luma, i * 0.04, (uv, uv.copy()))
    full = rng.integers(0, 256, wide, dtype=np.uint8)  # 4:4:4 chroma takes the other path
    steady.process(luma, 0.2, (full, full.copy()))
    IrModeTracker().update(luma, (uv, uv), 0.0)
    # a camera that pans (vision._pan): a view sliding 3 px a frame is found to pan within a
    # few frames, and the model moves with it from then on
    view = cv2.GaussianBlur(rng.normal(120.0, 50.0, (96, 200)), (0, 0), 1.5).clip(0, 255).astype(np.uint8)
    panning = MotionDetector(MotionSettings(analysis_width=128), (96, 128))
    for i in range(12):
        x = 3 * i
        planes = np.ascontiguousarray(view[:, x : x + 128])
        panning.process(planes, i * 0.04, (planes[::2, ::2].copy(), planes[::2, ::2].copy()))
    say("vision: compiling tamper kernels...")
    # past the learning time on unrelated frames, so that the moved check's blurred comparison runs
    tam = TamperDetector(TamperSettings(analysis_width=32, learn_s=0.5), shape)
    for i in range(4):
        tam.process(rng.integers(0, 256, shape, dtype=np.uint8), i * 0.3)
    spent = time.perf_counter() - t0
    say(f"vision: kernels ready in {spent:.1f} s")
    return spent
