"""The demo site's simulated camera, without GStreamer: the clip replayed through the same PyAV path."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from drivers.camera import Camera
from drivers.discovery import discover
from drivers.rtsp import DecodedFrame
from edge_config.camera import CameraDevice
from edge_core.signals import Signal
from simulators.demo_camera import demo_camera


async def _run_until_intrusion(camera: Camera, signals: list[Signal]) -> None:
    """Run the camera until it is connected and one intrusion opens (or 12 s go by)."""
    connected = asyncio.Event()
    task = asyncio.create_task(camera.run(signals.append, connected.set))
    try:
        await asyncio.wait_for(connected.wait(), 15)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and not any(s.rule == "intrusion" and s.active for s in signals):
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_demo_camera_replays_the_scene_and_is_discoverable(tmp_path: Path, scene_clip: Path) -> None:
    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")  # skip encoding the full demo scene
    frames: list[DecodedFrame] = []
    signals: list[Signal] = []
    async with demo_camera(tmp_path, use_gstreamer=False) as demo:
        assert demo.rtsp_port is None
        found = await discover(1.0, target=("127.0.0.1", demo.sim.discovery_port or 0))
        assert [(c.host, c.port) for c in found] == [("127.0.0.1", demo.sim.port)]

        config = CameraDevice.model_validate(demo.device)
        camera = Camera.from_config(config, tmp_path, frame_sink=frames.append)
        connected = asyncio.Event()
        task = asyncio.create_task(camera.run(signals.append, connected.set))
        try:
            await asyncio.wait_for(connected.wait(), 15)
            deadline = time.monotonic() + 10
            while len(frames) < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(frames) >= 8
    assert frames[0].luma.shape == (360, 640)
    assert camera.ingest is not None
    assert camera.ingest.replay
    assert not [s for s in signals if s.active]


async def test_vision_stage_raises_intrusion_in_the_zone_with_evidence(tmp_path: Path, scene_clip: Path) -> None:
    from edge_core.signals import Category
    from gateway.camera_stage import CameraVision
    from gateway.evidence import EvidenceStore

    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")
    store = EvidenceStore(tmp_path / "evidence", budget_bytes=20_000_000)
    signals: list[Signal] = []
    async with demo_camera(tmp_path, use_gstreamer=False, discovery_port=None) as demo:
        # The test clip is short: the walker crosses the zone in 0.4 s, so analyse every frame.
        stream = demo.device["stream"] | {"analysis_fps": 25.0}
        config = CameraDevice.model_validate(demo.device | {"events": False, "stream": stream})
        stage = CameraVision(config, signals.append, store)
        camera = Camera.from_config(config, tmp_path, evidence=store, frame_sink=stage.process)
        await _run_until_intrusion(camera, signals)
    assert stage.frames > 10 and stage.errors == 0
    intrusions = [s for s in signals if s.rule == "intrusion" and s.active]
    assert intrusions, [(s.rule, s.zone, s.active) for s in signals]
    first = intrusions[0]
    assert (first.category, first.zone, first.device) == (Category.INTRUSION, "gate", "cam-demo-gate")
    assert first.evidence is not None
    got = store.get(first.evidence.ref)
    assert got is not None
    assert got[0][:2] == b"\xff\xd8"


async def test_a_camera_without_events_gated_on_its_motion_still_raises_intrusion(
    tmp_path: Path, scene_clip: Path
) -> None:
    # gating = "camera_motion" on a camera with no Events service used to analyse nothing at all:
    # the restricted zone never raised an intrusion. It now falls back to analysing every frame.
    from gateway.camera_stage import CameraVision

    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")
    signals: list[Signal] = []
    async with demo_camera(tmp_path, use_gstreamer=False, discovery_port=None) as demo:
        demo.sim.events = False
        stream = demo.device["stream"] | {"analysis_fps": 25.0}
        config = CameraDevice.model_validate(demo.device | {"gating": "camera_motion", "stream": stream})
        stage = CameraVision(config, signals.append)
        camera = Camera.from_config(config, tmp_path, frame_sink=stage.process)
        await _run_until_intrusion(camera, signals)
    assert camera.status()["gating_in_force"] == "always"
    assert any(s.rule == "intrusion" and s.active and s.zone == "gate" for s in signals), [
        (s.rule, s.zone, s.active) for s in signals
    ]
