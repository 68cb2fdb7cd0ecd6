"""The IR-mode tracker: a camera's picture turning monochrome is its night mode."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from drivers.rtsp import bgr_planes
from simulators.scene import SceneTimeline, scene_frames
from tests.unit.vision.scenes import highway_dir
from vision import IrModeTracker

Planes = tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]


def _planes(bgr: np.ndarray) -> Planes:
    y, chroma = bgr_planes(bgr)
    assert chroma is not None
    return y, chroma


@functools.cache
def _views() -> tuple[np.ndarray, ...]:
    """BGR pictures of real or realistic views: CDnet highway when present, the demo scene too."""
    out = []
    folder = highway_dir() / "input"
    if folder.is_dir():
        for name in sorted(folder.glob("in*.jpg"))[::100]:
            img = cv2.imread(str(name), cv2.IMREAD_COLOR)
            assert img is not None
            out.append(img)
    for k, (_t, rgb) in enumerate(scene_frames(SceneTimeline(seconds=12.0))):
        if k % 25 == 0:
            out.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return tuple(out)


def _mono(bgr: np.ndarray) -> np.ndarray:
    """What the camera sends in IR mode: the same view without colour."""
    return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _feed(tracker: IrModeTracker, frames: list[Planes], t0: float, seconds: int) -> tuple[list[float], float]:
    """One measurement a second; returns the times at which the state changed, and the next time."""
    changes = []
    for s in range(seconds):
        y, chroma = frames[s % len(frames)]
        if tracker.update(y, chroma, t0 + s):
            changes.append(t0 + s)
    return changes, t0 + seconds


@pytest.mark.parametrize("light", [1.0, 0.12])
def test_colour_views_at_any_light_never_look_like_ir(light: float) -> None:
    frames = [_planes((v * light).astype(np.uint8)) for v in _views()]
    tracker = IrModeTracker(hold_s=5.0)
    changes, _ = _feed(tracker, frames, 0.0, 30)
    assert changes == []
    assert tracker.ir_on is None  # never seen in IR mode: the clock decides
    assert tracker.ratio is not None and tracker.ratio > 0.05


def test_monochrome_switches_after_the_hold_and_back_to_colour() -> None:
    views = list(_views())
    colour = [_planes(v) for v in views]
    mono = [_planes(_mono(v)) for v in views]
    tracker = IrModeTracker(hold_s=5.0)
    changes, t = _feed(tracker, colour, 0.0, 10)
    assert changes == []
    changes, t = _feed(tracker, mono, t, 10)
    assert changes == [15.0]  # mono from t = 10 on, confirmed 5 s later
    assert tracker.ir_on is True
    assert tracker.ratio is not None and tracker.ratio < 0.02
    changes, t = _feed(tracker, colour, t, 10)
    assert changes == [25.0]
    assert tracker.ir_on is False  # seen in IR mode once: colour now means day


def test_a_short_monochrome_spell_or_a_covered_lens_switches_nothing() -> None:
    view = _views()[0]
    colour, mono = _planes(view), _planes(_mono(view))
    covered = _planes(np.full_like(view, 30))
    tracker = IrModeTracker(hold_s=5.0)
    # 4 s of monochrome, then colour: shorter than the hold
    seq = [colour] * 3 + [mono] * 4 + [colour] * 3
    # monochrome interrupted by a covered lens: the flat picture says nothing, the hold restarts
    seq += [mono] * 3 + [covered] * 2 + [mono] * 3
    changes = [float(s) for s, (y, chroma) in enumerate(seq) if tracker.update(y, chroma, float(s))]
    assert changes == []
    assert tracker.ir_on is None
    restart = 15.0  # the last monochrome run began here
    assert not tracker.update(*mono, restart + 4.9)
    assert tracker.update(*mono, restart + 5.0)
    assert tracker.ir_on is True


def test_planes_are_checked_with_a_fix_in_the_message() -> None:
    y, (u, v) = _planes(_views()[0])
    tracker = IrModeTracker()
    with pytest.raises(ValueError, match=r"chroma\[1\] has shape"):
        tracker.update(y, (u, v[:-1]), 0.0)
    with pytest.raises(TypeError, match=r"luma must have dtype uint8"):
        tracker.update(y.astype(np.float32), (u, v), 0.0)
    with pytest.raises(ValueError, match="hold_s"):
        IrModeTracker(hold_s=-1.0)
