"""A person who stops in a restricted zone stays an intrusion: the background takes a stopped
object in only after ``absorb_after_s``, and nothing else (learning at the edges, the sample
memory, the neighbours' test) wears it away before."""

from __future__ import annotations

import numpy as np
import pytest

from bench._cdnet_eval import iter_frames, split_yuv420
from edge_config.vision import EventSettings, MotionSettings, Zone
from tests.unit.vision import scenes
from vision import MotionDetector, MotionEvents, VisionEvent

MINUTE = 60.0


def _person(rng: np.random.Generator) -> np.ndarray:
    """A 40 x 16 figure with clothes of its own texture: darker trousers, a lighter shirt."""
    fig = np.empty((40, 16), np.float32)
    fig[:22] = 170.0
    fig[22:] = 60.0
    fig += rng.normal(0, 12, fig.shape).astype(np.float32)
    return fig


def test_a_person_standing_still_for_a_minute_keeps_the_intrusion_open() -> None:
    """Daemon-like 5 fps: walks in for 3 s, stands 75 s, walks out; one intrusion throughout."""
    fps = 5.0
    shape = (180, 320)
    zone = Zone(name="gate", kind="restricted", points=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
    bg = scenes.textured_background(shape, seed=3)
    rng = np.random.default_rng(8)
    fig = _person(rng)
    settings = MotionSettings()
    assert settings.absorb_after_s > MINUTE  # the default itself, not a setting made for the test
    det = MotionDetector(settings, shape, (zone,))
    events = MotionEvents(EventSettings(), shape, (zone,))
    stand_x, y0 = 220, 100
    walk = int(3 * fps)
    stand = int(75 * fps)
    out: list[tuple[int, VisionEvent]] = []
    open_frames = []
    for i in range(int(20 * fps) + walk + stand + walk + int(10 * fps)):
        k = i - int(20 * fps)  # 20 s of empty scene first
        frame = bg.astype(np.float32)
        if 0 <= k < walk:
            x = int(100 + (stand_x - 100) * k / walk)
        elif walk <= k < walk + stand:
            x = stand_x + int(rng.integers(-1, 2))  # standing: a person sways by a pixel
        elif walk + stand <= k < 2 * walk + stand:
            x = int(stand_x + 90 * (k - walk - stand) / walk)
        else:
            x = -1
        if 0 <= x <= shape[1] - 16:
            frame[y0 : y0 + 40, x : x + 16] = fig
        y = scenes.noisy(frame, rng)
        res = det.process(y, i / fps)
        out += [(k, e) for e in events.update(res, y)]
        if walk <= k < walk + stand:
            open_frames.append(("intrusion", "gate") in events.active)
    opened = [k for k, e in out if e.active]
    closed = [k for k, e in out if not e.active]
    assert len(opened) == 1 and opened[0] < walk  # one incident, opened while walking in
    assert all(open_frames), f"closed after {open_frames.index(False) / fps:.1f} s of standing"
    assert len(closed) == 1 and closed[0] >= walk + stand  # closed only once they left


def test_office_person_reading_stays_an_intrusion(request: pytest.FixtureRequest) -> None:
    """CDnet office (changedetection.net; Goyette et al. 2012, Wang et al. 2014): a person walks
    in near frame 600 and stands reading from about 800 to 1900 (44 s at 25 fps)."""
    folder = scenes.highway_dir().parent / "office"
    if not (folder / "input").is_dir():
        pytest.skip(f"CDnet office not found at {folder} (../shared/data or $GATEWAY_SHARED_DATA)")
    zone = Zone(name="desk", kind="restricted", points=((0.42, 0.2), (0.67, 0.2), (0.67, 1.0), (0.42, 1.0)))
    det: MotionDetector | None = None
    events: MotionEvents | None = None
    out: list[tuple[int, VisionEvent]] = []
    was_open = []
    for num, bgr in iter_frames(folder):
        if num > 1900:
            break
        y, u, v = split_yuv420(bgr)
        if det is None or events is None:
            det = MotionDetector(MotionSettings(), y.shape, (zone,))
            events = MotionEvents(EventSettings(), y.shape, (zone,))
        res = det.process(y, num / 25.0, (u, v))
        out += [(num, e) for e in events.update(res)]
        if num >= 800:
            was_open.append(("intrusion", "desk") in events.active)
    opened = [n for n, e in out if e.active]
    assert opened and 590 <= opened[0] <= 700
    assert all(was_open), f"closed at frame {800 + was_open.index(False)}"
