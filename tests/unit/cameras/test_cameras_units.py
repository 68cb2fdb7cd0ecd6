"""Small pure pieces of the camera drivers: topics, URLs, luma views, durations, config."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from pydantic import ValidationError

from drivers import camera as camera_module
from drivers.camera import Camera
from drivers.onvif import EventKind, classify_topic, redact_url, with_credentials
from drivers.rtsp import DecodedFrame, bgr_planes, frame_planes
from edge_config.camera import CameraDevice, EventGating, StreamMode
from edge_core.errors import DriverError
from edge_core.signals import Signal
from simulators.onvif_camera import parse_duration


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("tns1:VideoSource/MotionAlarm", EventKind.MOTION),
        ("tns1:RuleEngine/CellMotionDetector/Motion", EventKind.MOTION),
        ("tns1:RuleEngine/TamperDetector/Tamper", EventKind.TAMPER),
        ("tns1:VideoSource/GlobalSceneChange/ImagingService", EventKind.SCENE_CHANGE),
        ("tns1:VideoSource/GlobalSceneChange/AnalyticsService", EventKind.SCENE_CHANGE),
        ("tns1:VideoSource/ImageTooBlurry/ImagingService", EventKind.TOO_BLURRY),
        ("tns1:VideoSource/ImageTooDark/AnalyticsService", EventKind.TOO_DARK),
        ("tns1:VideoSource/ImageTooBright/ImagingService", EventKind.TOO_BRIGHT),
        ("tns1:VideoSource/SignalLoss", EventKind.SIGNAL_LOSS),
        ("ns2:VideoSource/MotionAlarm", EventKind.MOTION),  # vendors pick their own prefix
        ("VideoSource/MotionAlarm", EventKind.MOTION),
        ("tns1:Device/Trigger/DigitalInput", None),
        ("tns1:Monitoring/ProcessorUsage", None),
    ],
)
def test_topics_map_to_kinds(topic: str, kind: EventKind | None) -> None:
    assert classify_topic(topic) is kind


def test_urls_with_and_without_credentials() -> None:
    assert with_credentials("rtsp://cam:554/s", None, "x") == "rtsp://cam:554/s"
    assert with_credentials("rtsp://old:pw@cam/s", "u", "p w") == "rtsp://u:p%20w@cam/s"
    assert redact_url("rtsp://u:secret@[fe80::1]:554/s") == "rtsp://[fe80::1]:554/s"
    assert with_credentials("rtsp://[fe80::1]/s", "u", "p") == "rtsp://u:p@[fe80::1]/s"
    assert "secret" not in redact_url("http://cam/snap?pwd=secret&x=1")
    assert redact_url(None) == ""


def _fill(plane: Any, values: np.ndarray) -> np.ndarray:
    """Write ``values`` into a PyAV plane through a writable view; return the padded rows."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    rows[: values.shape[0], : values.shape[1]] = values
    return rows


@pytest.mark.parametrize(("width", "height"), [(640, 360), (350, 200), (34, 18)])
def test_frame_planes_are_the_decoder_planes_without_copy(width: int, height: int) -> None:
    rng = np.random.default_rng(width)
    frame = av.VideoFrame(width, height, "yuv420p")
    want = [rng.integers(0, 256, (p.height, p.width), dtype=np.uint8) for p in frame.planes]
    rows = [_fill(p, w) for p, w in zip(frame.planes, want, strict=True)]
    luma, chroma = frame_planes(frame)
    assert chroma is not None
    for got, expected, buf in zip((luma, *chroma), want, rows, strict=True):
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert np.shares_memory(got, buf)
        assert not got.flags.writeable
    assert chroma[0].shape == (height // 2, width // 2)
    if frame.planes[0].line_size != width:
        assert not luma.flags.c_contiguous  # stride kept, nothing copied
    compact_luma, compact_chroma = DecodedFrame("cam", 0.0, luma, True, chroma).compact()
    assert compact_luma.flags.c_contiguous and compact_chroma is not None
    assert all(p.flags.c_contiguous for p in compact_chroma)
    np.testing.assert_array_equal(compact_chroma[1], want[2])


def test_frame_planes_split_interleaved_nv12_chroma() -> None:
    frame = av.VideoFrame(8, 4, "nv12")
    y = np.arange(32, dtype=np.uint8).reshape(4, 8)
    uv = np.array([[10, 20] * 4, [11, 21] * 4], np.uint8)  # U, V pairs
    _fill(frame.planes[0], y)
    _fill(frame.planes[1], uv)
    luma, chroma = frame_planes(frame)
    assert chroma is not None
    np.testing.assert_array_equal(luma, y)
    np.testing.assert_array_equal(chroma[0], [[10] * 4, [11] * 4])
    np.testing.assert_array_equal(chroma[1], [[20] * 4, [21] * 4])


@pytest.mark.parametrize("fmt", ["rgb24", "yuv420p10le", "gray"])
def test_frame_planes_convert_other_formats_instead_of_reading_their_bytes(fmt: str) -> None:
    # 10-bit planes hold two bytes a sample: viewed as bytes they would be garbage
    grey = np.full((4, 6, 3), 200, np.uint8)
    frame = av.VideoFrame.from_ndarray(grey, format="rgb24").reformat(format=fmt)
    luma, chroma = frame_planes(frame)
    assert luma.shape == (4, 6) and luma.dtype == np.uint8
    assert abs(int(luma[1, 1]) - 200) <= 15  # limited-range luma of grey 200
    assert chroma is not None and chroma[0].shape == (2, 3)
    assert abs(int(chroma[0][1, 1]) - 128) <= 1  # grey: neutral chroma


def test_snapshot_like_pictures_give_i420_planes_or_luma_only_when_odd() -> None:
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # red
    luma, chroma = bgr_planes(bgr)
    assert luma.shape == (4, 6) and chroma is not None
    assert chroma[0].shape == chroma[1].shape == (2, 3)
    assert int(chroma[1][0, 0]) > 200  # red: high V
    odd_luma, odd_chroma = bgr_planes(bgr[:3])
    assert odd_luma.shape == (3, 6) and odd_chroma is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("PT60S", 60), ("PT1M30S", 90), ("PT0.5S", 0.5), ("P1DT2H", 93600), ("PT10M", 600)]
)
def test_xs_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "P", "PT", "60", "PTS"])
def test_bad_xs_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="xs:duration"):
        parse_duration(bad)


def _camera(**kw: object) -> CameraDevice:
    return CameraDevice.model_validate({"kind": "onvif", "id": "c1", "host": "10.0.0.5"} | kw)


def test_camera_config_defaults_and_checks() -> None:
    cam = _camera()
    assert cam.port == 80
    assert cam.stream.mode is StreamMode.RTSP
    assert cam.gating is EventGating.ALWAYS
    assert cam.stream.offline_after_s > cam.stream.stall_timeout_s
    assert _camera(national_id="51042100001320000001").national_id == "51042100001320000001"
    with pytest.raises(ValidationError, match="national_id"):
        _camera(national_id="5104210000132000000")  # 19 digits
    with pytest.raises(ValidationError, match="a password needs a username"):
        _camera(password={"credential": "cam_pw"})
    with pytest.raises(ValidationError, match="extra"):
        _camera(rtsp_url="rtsp://x")
    with pytest.raises(ValidationError, match=r"'http://10\.0\.0\.5/onvif' is not a host"):
        _camera(host="http://10.0.0.5/onvif")  # pasted from the camera's web page
    assert _camera(host="fe80::1").host == "fe80::1"
    with pytest.raises(ValidationError, match="mode"):
        _camera(stream={"mode": "mjpeg"})


class _Clock:
    """drivers.camera's view of time, moved by hand (the event loop keeps the real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


async def test_offline_is_counted_from_the_first_connect_not_from_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon builds its cameras, then compiles the vision kernels (15 s on a first start),
    # then runs them: that wait must not make the camera offline the moment it starts.
    clock = _Clock()
    monkeypatch.setattr(camera_module, "time", clock)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: the ONVIF connect is refused at once
        cam = Camera(_camera(host="127.0.0.1", port=closed.getsockname()[1]), password=None)
        signals: list[Signal] = []
        clock.now += 60  # kernels compiling
        with pytest.raises(DriverError):
            await cam.run(signals.append, lambda: None)
        assert signals == [] and not cam.offline
        clock.now += cam.config.stream.offline_after_s  # the camera stays unreachable that long
        with pytest.raises(DriverError):
            await cam.run(signals.append, lambda: None)
    assert [(s.rule, s.active) for s in signals] == [("camera-offline", True)] and cam.offline


def test_camera_status_says_when_the_motion_model_follows_a_pan() -> None:
    from gateway.camera_stage import CameraVision
    from tests.unit.vision import scenes

    cv = CameraVision(_camera(), lambda _signal: None)  # stabilise "auto", as a camera gets it
    states: list[tuple[bool, bool]] = []
    for i, (luma, pans, _obj) in enumerate(scenes.panning((180, 320), 30, 40, 40, 4, seed=24)):
        cv.process(DecodedFrame("c1", i / scenes.FPS, luma, False))
        states.append((pans, cv.status()["panning"]))
    assert cv.errors == 0
    assert not any(status for _pans, status in states[:30])  # a still camera
    assert all(status for _pans, status in states[40:70])  # found within ten frames of the pan
    assert not any(status for _pans, status in states[-10:])  # it stopped: the model rests


def test_camera_vision_follows_the_picture_into_ir_mode_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from gateway import camera_stage
    from gateway.camera_stage import CameraVision
    from simulators.scene import SceneTimeline, scene_frames
    from vision import IrModeTracker

    # the clock alone would say day all the time (an empty night window)
    cfg = _camera(vision={"profiles": {"schedule": {"night_start": "12:00", "night_end": "12:00"}}})
    signals: list[Signal] = []
    cv = CameraVision(cfg, signals.append)
    monkeypatch.setattr(camera_stage, "_IR_CHECK_S", 0.0)  # measure every frame
    cv.ir = IrModeTracker(hold_s=0.0)  # and believe the first measurement

    def frame(t: float, rgb: np.ndarray, mono: bool) -> DecodedFrame:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if mono:  # the camera's IR mode: the same view, no colour
            bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        luma, chroma = bgr_planes(bgr)
        return DecodedFrame("c1", t, luma, False, chroma)

    seen = []
    assert _camera().vision.stabilise == "auto"  # aligns only while the camera shakes
    for t, rgb in scene_frames(SceneTimeline(walk_start=100.0, walk_end=101.0, lights_on=100.0, seconds=3.0)):
        cv.process(frame(t, rgb, mono=1.0 <= t < 2.0))
        assert cv._det is not None
        seen.append((cv.profile, cv.ir.ir_on, cv._det.settings.threshold_sigma))
    assert cv.errors == 0
    assert seen[0] == ("day", None, 3.5)  # colour, never seen in IR mode: the clock's day
    assert seen[30] == ("night", True, 4.5)  # monochrome: the night settings at once
    assert seen[-1] == ("day", False, 3.5)  # colour again
    # the colour switching off and on is a global change for motion, not an incident
    assert signals == []


def test_camera_vision_tamper_evidence_shows_the_learned_view_beside_the_covered_one(tmp_path: Path) -> None:
    import cv2

    from gateway.camera_stage import CameraVision
    from gateway.evidence import EvidenceStore
    from simulators.scene import SceneTimeline, scene_frames

    store = EvidenceStore(tmp_path)
    signals: list[Signal] = []
    cv = CameraVision(_camera(vision={"stabilise": "on"}), signals.append, store)  # a camera on a mast
    rng = np.random.default_rng(3)
    for t, rgb in scene_frames(SceneTimeline(walk_start=100.0, walk_end=101.0, lights_on=100.0, seconds=7.0)):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if t >= 4.5:  # a hand over the lens: dark, a little sensor noise
            bgr = np.clip(rng.normal(10, 2, bgr.shape), 0, 255).astype(np.uint8)
        luma, chroma = bgr_planes(bgr)
        cv.process(DecodedFrame("c1", t, luma, False, chroma))
    assert cv.stabilising
    raised = [s for s in signals if s.active]
    assert [s.rule for s in raised] == ["tamper-covered"]
    assert raised[0].evidence is not None
    got = store.get(raised[0].evidence.ref)
    assert got is not None and got[1] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(got[0], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (360, 644 + 640, 3)  # learned view | covered frame
    learned, now = img[60:, :640].astype(int), img[60:, 644:].astype(int)
    assert learned.mean() > 60 > 20 > now.mean()
