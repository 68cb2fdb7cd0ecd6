"""Compile every numba kernel once (or load it from the cache) before the daemon needs it.

Cold, numba compiles the vision and anomaly kernels in several seconds; from the cache in
``$NUMBA_CACHE_DIR`` it takes well under one. ``scripts/bootstrap`` runs this at install, and the
daemon runs it in a worker thread at start, with the API already answering, before any driver
delivers a frame or a reading: a first reading must not wait for a compiler on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import vision
from anomaly import make_detector
from edge_config.anomaly import AnomalySettings

__all__ = ["warm_kernels"]


def warm_kernels(progress: Callable[[str], None] = lambda _line: None) -> float:
    """Warm every kernel; returns the seconds it took. ``progress`` gets one line per step."""
    t0 = time.perf_counter()
    vision.warm_up(progress)
    progress("anomaly: compiling detector kernels (cached after the first start)...")
    for kind in ("ensemble", "windowed_gaussian"):
        det = make_detector(AnomalySettings(detector=kind))
        det.score_batch(np.linspace(0.0, 1.0, 64), np.arange(64, dtype=np.float64) * 60.0)
        det.update(0.5, 64 * 60.0)
    took = time.perf_counter() - t0
    progress(f"kernels ready in {took:.1f} s")
    return took
