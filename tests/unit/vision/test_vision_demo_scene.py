"""The demo camera's scene through the whole vision stage: one intrusion per crossing, lights quiet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drivers.rtsp import bgr_planes
from edge_config.vision import VisionSettings
from simulators.scene import FPS, SCENE_ZONE, SceneTimeline, scene_frames
from vision import MotionDetector, MotionEvents, TamperDetector, draw_evidence

Planes = tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]


@pytest.fixture(scope="module")
def clip() -> list[Planes]:
    """The scene's frames as the daemon's decoder gives them; drawn once, as drawing them is most
    of these tests' time."""
    return [bgr_planes(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) for _, rgb in scene_frames(SceneTimeline())]


def test_walker_opens_one_intrusion_and_lights_raise_nothing(clip: list[Planes]) -> None:
    settings = VisionSettings.model_validate(
        {"zones": [{"name": "gate", "kind": "restricted", "points": [list(p) for p in SCENE_ZONE]}]}
    )
    timeline = SceneTimeline()
    det = tam = events = None
    log: list[tuple[float, str, bool]] = []
    global_changes: list[float] = []
    best = None
    for k, (y, chroma) in enumerate(clip):
        t = k / FPS
        h, w = y.shape
        if det is None or tam is None or events is None:
            det = MotionDetector(settings.profiles.day, (h, w), settings.zones)
            events = MotionEvents(settings.events, (h, w), settings.zones)
            tam = TamperDetector(settings.tamper, (h, w))
        log += [(t, e.kind, e.active) for e in tam.process(y, t)]
        result = det.process(y, t, chroma)
        if result.global_change:
            global_changes.append(t)
        for e in events.update(result, y, suppressed=tam.analysis_suppressed, chroma=chroma):
            log.append((t, e.kind, e.active))
            best = e.best
    assert [(kind, active) for _, kind, active in log] == [("intrusion", True), ("intrusion", False)]
    t_open, t_close = log[0][0], log[1][0]
    assert timeline.walk_start < t_open < t_close < timeline.walk_end + 1.0
    assert global_changes and all(abs(t - timeline.lights_on) < 0.1 for t in global_changes)
    assert best is not None and best.boxes
    box = best.boxes[0]
    assert 120 < box.h < 170 and 20 < box.w < 50  # the walker, head to feet
    # the evidence is in colour: the best frame kept its own copy of the chroma planes
    assert best.chroma is not None and best.chroma[0].shape == (h // 2, w // 2)
    jpeg = draw_evidence(best.luma, best.boxes, settings.zones, chroma=best.chroma)
    saturation = []
    for data in (jpeg, draw_evidence(best.luma, best.boxes)):  # in colour, and grey without chroma
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        saturation.append(float(cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 1].mean()))
    assert saturation[0] > 20 > 5 > saturation[1]


@pytest.mark.parametrize("phase_s", [0.0, 1.5, 6.0])
@pytest.mark.parametrize("fps", [5.0, 2.0])
def test_looping_scene_at_the_daemons_rate_opens_one_intrusion_per_crossing(
    clip: list[Planes], phase_s: float, fps: float
) -> None:
    """The demo camera loops its clip, and the daemon analyses 5 frames a second (key-frame mode:
    fewer). Each loop starts dark again right after the lights came on: a global change, then a
    one-second relearning window of only five frames. It learned 0.25 a frame whatever the frame
    rate, so a quarter of the lights switch was left and became an intrusion 1.4 s into the loop.
    At 2 frames a second the walker is in the zone on two frames, fewer than ``on_frames``: they
    span about a second, which ``on_within_s`` counts."""
    settings = VisionSettings.model_validate(
        {"zones": [{"name": "gate", "kind": "restricted", "points": [list(p) for p in SCENE_ZONE]}]}
    )
    timeline = SceneTimeline()
    h, w = clip[0][0].shape
    det = MotionDetector(settings.profiles.day, (h, w), settings.zones)
    events = MotionEvents(settings.events, (h, w), settings.zones)
    tam = TamperDetector(settings.tamper, (h, w))
    opened: list[float] = []
    step = round(FPS / fps)
    start = round(phase_s * FPS)
    for k in range(0, 4 * len(clip), step):
        y, chroma = clip[(start + k) % len(clip)]
        t = k / FPS
        suppressed = bool(tam.process(y, t)) or tam.analysis_suppressed
        for e in events.update(det.process(y, t, chroma), y, suppressed=suppressed, chroma=chroma):
            if e.active:
                opened.append((phase_s + t) % timeline.seconds)  # the time within the clip
    assert len(opened) == 4  # one a loop (starting mid-crossing, the walker still moves on)
    assert all(timeline.walk_start < t < timeline.walk_end for t in opened), opened
