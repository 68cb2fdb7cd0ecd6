"""bgslibrary's methods (SuBSENSE, PAWCS, LOBSTER, ViBe) as bench peers, when ``pybgs`` is installed.

``pybgs`` is bgslibrary's Python wrapper (A. Sobral, github andrewssobral/bgslibrary; an sdist that
builds against Debian's libopencv-dev and cmake). It is a peer for benchmarks only: the daemon
never imports it and its install never installs it. ``bench/install_peers`` installs it into the
project's venv. Without it the benches say so in a comment line and run the other methods.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["BGS_METHODS", "MISSING_NOTE", "available", "bgs_method", "silenced"]

# (name in the bench, pybgs class): the strongest methods that need no training, and ViBe, the
# sample-set model the others grew from
BGS_METHODS = (("bgs-SuBSENSE", "SuBSENSE"), ("bgs-PAWCS", "PAWCS"), ("bgs-LOBSTER", "LOBSTER"), ("bgs-ViBe", "ViBe"))

MISSING_NOTE = (
    "# bgslibrary (pybgs) is not installed: SuBSENSE, PAWCS, LOBSTER and ViBe left out "
    "(bench/install_peers installs it into .venv)"
)

_module: Any = None
_tried = False


def _pybgs() -> Any:
    global _module, _tried
    if not _tried:
        _tried = True
        try:
            import pybgs
        except ImportError:
            _module = None
        else:
            _module = pybgs
    return _module


def available() -> bool:
    """pybgs can be imported."""
    return _pybgs() is not None


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """File descriptor 1 to /dev/null for the block: bgslibrary's constructors and destructors
    print their names (``+SuBSENSE()``) straight to it, which would land among the bench's lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _scratch_cwd() -> Iterator[None]:
    """bgslibrary writes each algorithm's settings to ./config/<name>.xml (and complains when
    there is no ./config): keep that in a scratch directory."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="bgs-") as tmp:
        os.mkdir(os.path.join(tmp, "config"))
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def bgs_method(cls_name: str) -> Callable[[tuple[int, int]], Callable[[np.ndarray, float], np.ndarray]]:
    """A bench method factory for pybgs class ``cls_name``: BGR frame in, bool mask out (its own
    default settings, no post-filter: the methods clean up their own masks)."""

    def make(_shape: tuple[int, int]) -> Callable[[np.ndarray, float], np.ndarray]:
        mod = _pybgs()
        with _scratch_cwd(), silenced():  # constructors read ./config/<name>.xml too
            algo = getattr(mod, cls_name)()
        first = [True]

        def run(bgr: np.ndarray, _t: float) -> np.ndarray:
            if first[0]:  # the first apply writes the config file
                first[0] = False
                with _scratch_cwd(), silenced():
                    out = algo.apply(bgr)
            else:
                out = algo.apply(bgr)
            out = np.asarray(out)
            if out.ndim == 3:
                out = out[..., 0]
            mask: np.ndarray = out > 127
            return mask

        return run

    return make
