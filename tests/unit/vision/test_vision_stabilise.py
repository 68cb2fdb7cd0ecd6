"""Camera motion: shake compensation (the shift is measured, the test runs aligned, boxes come back
in frame pixels) and a background model that follows a camera that pans (vision._pan)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge_config.vision import MotionSettings
from tests.unit.vision import scenes
from vision import MotionDetector
from vision._stabilise import ShakeCompensator

SHAPE = (180, 320)


def _shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The view moved by (dx, dy) in the picture, as a shaking camera sees it: what was at p is
    now at p + d."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float32)
    return np.asarray(cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT))


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.4, -0.3), (2.5, 1.0), (-3.0, 2.0), (6.0, -4.5)])
def test_the_measured_shift_is_the_camera_shake(shift: tuple[float, float]) -> None:
    bg = scenes.textured_background(SHAPE, seed=3)
    stab = ShakeCompensator(SHAPE, 1, SHAPE, always=True)
    frame = _shifted(bg, *shift)
    aligned, chroma = stab.align(frame, None, bg.astype(np.float32))
    assert chroma is None
    # the frame's content at p + d is the background's at p: read there, it lines up again
    assert stab.shift == pytest.approx(shift, abs=0.1)
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(aligned[inner].astype(int) - bg[inner]).mean() < 3


def _shaking(
    n: int, amplitude: float, seed: int, square: bool
) -> Iterator[tuple[np.ndarray, int, tuple[float, float]]]:
    """A static view shaking by up to ``amplitude`` px (a smoothed random walk), optionally with a
    bright square crossing it; yields (luma, square x, shake)."""
    rng = np.random.default_rng(seed)
    bg = scenes.textured_background(SHAPE, seed=seed)
    s = np.zeros(2)
    for i, (frame, x) in enumerate(scenes.moving_square(bg, n, size=16, seed=seed)):
        if i >= 30:  # learned still, then the wind starts
            s = np.clip(0.7 * s + rng.normal(0, 0.6 * amplitude, 2), -amplitude, amplitude)
        img = frame if square else scenes.noisy(bg, rng)
        yield _shifted(img, *s), x, (float(s[0]), float(s[1]))


def test_a_shaking_view_shows_motion_unless_stabilised() -> None:
    # the neighbours' test and the sample sets off: each tolerates much of a shake of a pixel or
    # two by itself (the neighbours' test is checked last; the sample sets in test_vision_motion)
    alone = MotionSettings(neighbour_tolerance=False, sample_veto=False)
    plain = MotionDetector(alone, SHAPE, stabilise="off")
    steady = MotionDetector(alone, SHAPE, stabilise="on")
    auto = MotionDetector(alone, SHAPE)  # the default, "auto"
    near = MotionDetector(MotionSettings(), SHAPE, stabilise="off")
    boxes = {"off": 0, "on": 0, "auto": 0, "near": 0}
    auto_from = None
    for i, (luma, _x, _s) in enumerate(_shaking(200, 2.0, 4, square=False)):
        t = i / scenes.FPS
        for name, det in (("off", plain), ("on", steady), ("auto", auto), ("near", near)):
            found = det.process(luma, t).boxes
            if i >= 40:
                boxes[name] += len(found)
        if auto_from is None and auto.stabilising:
            auto_from = i
    assert boxes["on"] == 0
    assert boxes["off"] > 20  # what stabilising is for
    # auto: the shake starts at frame 30 and two probes 2 s apart see it
    assert auto_from is not None and 30 < auto_from <= 30 + 3 * 50
    assert boxes["auto"] < boxes["off"] / 2
    assert boxes["near"] < boxes["off"] / 2


def test_auto_stays_off_for_a_still_camera_and_stops_when_the_wind_does() -> None:
    still = MotionDetector(MotionSettings(), SHAPE)
    for i, (luma, _x) in enumerate(scenes.moving_square(scenes.textured_background(SHAPE, seed=8), 300)):
        still.process(luma, i / scenes.FPS)  # a still camera, an object crossing again and again
        assert not still.stabilising
    det = MotionDetector(MotionSettings(), SHAPE)
    frames = list(_shaking(150, 2.0, 9, square=False))
    for i, (luma, _x, _s) in enumerate(frames):
        det.process(luma, i / scenes.FPS)
    assert det.stabilising
    rng = np.random.default_rng(9)
    rest = scenes.textured_background(SHAPE, seed=9)  # the wind drops: the camera back at rest
    for i in range(150, 150 + 240):
        det.process(scenes.noisy(rest, rng), i / scenes.FPS)
    assert det.stabilising  # not yet: 250 still aligned frames (10 s) switch it off
    for i in range(390, 400):
        det.process(scenes.noisy(rest, rng), i / scenes.FPS)
    assert not det.stabilising


def test_boxes_of_a_stabilised_detector_are_in_the_frame_pixels() -> None:
    det = MotionDetector(MotionSettings(), SHAPE, stabilise="on")
    checked = 0
    for i, (luma, x, s) in enumerate(_shaking(120, 2.0, 6, square=True)):
        result = det.process(luma, i / scenes.FPS)
        if i < 40 or not 20 < x < 280 or not result.boxes:
            continue
        box = result.boxes[0]
        # the square is at x in the still view, 16 px wide, at the middle row; the shake moved it by s
        assert abs(box.x - (x + s[0])) <= 2.5 and abs(box.y - (SHAPE[0] // 2 + s[1])) <= 2.5
        assert abs(box.w - 16) <= 3 and abs(box.h - 16) <= 3
        mask = det.foreground_mask
        cy, cx = round(SHAPE[0] // 2 + 8 + s[1]), round(x + 8 + s[0])
        assert mask[cy, cx] == 1  # the mask too is in frame pixels
        checked += 1
    assert checked > 30


def test_the_mask_moves_back_without_wrapping_round() -> None:
    from vision._motion import _moved

    mask = np.zeros((4, 6), np.uint8)
    mask[:, -1] = 1  # along the right edge
    assert not _moved(mask, 0, 2).any()  # moved out of the frame, not in on the left
    npt_moved = _moved(mask, 1, -2)
    assert npt_moved[1:, 3].all() and npt_moved.sum() == 3


def test_lights_going_on_are_no_shake() -> None:
    # Probes right after the lights change compare a brighter view with the old background:
    # too few pixels are usable, and that says nothing either way (it once counted as shake, and
    # the demo camera, whose scene switches its lights every 12 s, ended up aligning).
    view = scenes.textured_background(SHAPE, seed=5).astype(np.float32)
    lit = np.clip(view + 60, 0, 255).astype(np.uint8)
    stab = ShakeCompensator(SHAPE, 1, SHAPE, always=False)
    for _ in range(4):
        assert not stab.engaged(lit, view)
    # a view only a little brighter is still usable: the brightness offset is solved for
    brighter = np.clip(view + 12, 0, 255).astype(np.uint8)
    for _ in range(4):
        assert not stab.engaged(brighter, view)
    shaken = _shifted(np.clip(view, 0, 255).astype(np.uint8), 1.5, -1.0)
    assert not stab.engaged(shaken, view)  # one shaky probe
    assert stab.engaged(shaken, view)  # two in a row


def test_a_panning_camera_sees_what_it_follows_and_not_the_view() -> None:
    det = MotionDetector(MotionSettings(), SHAPE)
    seen = quiet = 0
    for i, (luma, pans, _obj) in enumerate(scenes.panning(SHAPE, 30, 75, 0, 3, seed=21)):
        result = det.process(luma, i / scenes.FPS)
        # the pan is found within a few frames; the model then starts afresh from the frame and
        # the object, learned with it, shows in full once the view has slid from under it
        if i < 30 + 30 or not pans:
            continue
        assert det.panning
        mask = det.foreground_mask.astype(bool)
        outside = mask.copy()
        outside[80 - 3 : 100 + 3, 150 - 3 : 190 + 3] = False
        assert outside.mean() < 0.005  # the sliding view is background
        boxes = [b for b in result.boxes if abs(b.cx - 170) < 6 and abs(b.cy - 90) < 6]
        if boxes and abs(boxes[0].w - 40) <= 4 and abs(boxes[0].h - 20) <= 4:
            seen += 1
        quiet += 1
    assert quiet == 45 and seen >= 40


def test_a_pan_that_stops_leaves_the_model_where_the_camera_rests() -> None:
    det = MotionDetector(MotionSettings(), SHAPE)
    boxes_after = 0
    for i, (luma, _pans, obj) in enumerate(scenes.panning(SHAPE, 30, 40, 60, 4, seed=22)):
        result = det.process(luma, i / scenes.FPS)
        if i == 30 + 39:
            assert det.panning
        if i >= 30 + 40 + 20:  # the camera rests: the view it stopped at is background
            assert not obj
            boxes_after += len(result.boxes)
            assert not det.panning
    assert boxes_after == 0


def test_neither_shake_nor_a_large_object_is_a_pan() -> None:
    shaken = MotionDetector(MotionSettings(), SHAPE)
    for i, (luma, _x, _s) in enumerate(_shaking(200, 3.0, 4, square=True)):
        shaken.process(luma, i / scenes.FPS)
        assert not shaken.panning
    still = MotionDetector(MotionSettings(), SHAPE)
    bg = scenes.textured_background(SHAPE, seed=8)
    # a lorry near the lens, with more corners than the view: most corners move together
    texture = scenes.fine_texture((150, 160), seed=3)
    rng = np.random.default_rng(8)
    for i in range(150):
        frame = bg.astype(np.float32)
        x = -160 + 5 * i % (SHAPE[1] + 160)
        x0, x1 = max(0, x), min(SHAPE[1], x + 160)
        if x1 > x0:
            frame[20:170, x0:x1] = texture[:, x0 - x : x1 - x]
        still.process(scenes.noisy(frame, rng), i / scenes.FPS)
        assert not still.panning


def test_a_pan_into_a_view_without_corners_stops_being_followed() -> None:
    # fog closes in mid-pan: nothing can be tracked, the model moves on as the camera last moved
    # for a few frames, then stays put
    det = MotionDetector(MotionSettings(), SHAPE)
    rng = np.random.default_rng(23)
    for i, (luma, _pans, _obj) in enumerate(scenes.panning(SHAPE, 30, 20, 0, 4, seed=23)):
        det.process(luma, i / scenes.FPS)
    assert det.panning
    fog = np.full(SHAPE, 128.0)
    for i in range(50, 55):
        det.process(scenes.noisy(fog, rng), i / scenes.FPS)
        assert det.panning  # moved as the last frame moved
    det.process(scenes.noisy(fog, rng), 55 / scenes.FPS)  # the sixth frame without a measurement
    assert not det.panning
