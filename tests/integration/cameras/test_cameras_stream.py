"""A camera end to end: ONVIF simulator + GStreamer RTSP server + PyAV ingest + signals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.camera import Camera
from drivers.rtsp import DecodedFrame, RtspIngest
from edge_config.camera import CameraDevice
from edge_core.signals import Category, Signal
from gateway.evidence import EvidenceStore
from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import (
    PASSWORD,
    USER,
    RtspServer,
    camera_config,
    running_camera,
    unclosed_http_reports,
)
from tests.integration.gateway.conftest import until


def _config(sim: OnvifCameraSim, **overrides: Any) -> CameraDevice:
    stream = {"offline_after_s": 2.0, "stall_timeout_s": 1.0, "reconnect_max_s": 0.5, "open_timeout_s": 3.0}
    identity = {"department": "public-security", "national_id": "51042100001320000001"}
    return camera_config(sim, stream, **(identity | overrides))


@pytest.fixture
async def sim_with_rtsp(rtsp_server: RtspServer) -> AsyncIterator[OnvifCameraSim]:
    async with OnvifCameraSim(
        username=USER, password=PASSWORD, rtsp_main=rtsp_server.url("main"), rtsp_sub=rtsp_server.url("sub")
    ) as sim:
        yield sim


@pytest.mark.network
async def test_rtsp_server_stopped_raises_offline_and_restart_resolves_it(
    sim_with_rtsp: OnvifCameraSim, rtsp_server: RtspServer
) -> None:
    frames: list[DecodedFrame] = []
    signals: list[Signal] = []
    camera = Camera(_config(sim_with_rtsp, events=False), password=PASSWORD, frame_sink=frames.append)
    async with running_camera(camera, signals):
        await until(lambda: len(frames) >= 5, 10, "frames")
        f = frames[-1]
        assert f.camera == "gate-cam"
        assert f.luma.shape == (360, 640)
        assert f.luma.dtype.name == "uint8"
        # the colour planes come too (the detector's chroma and shadow tests need them)
        assert f.chroma is not None
        assert [p.shape for p in f.chroma] == [(180, 320), (180, 320)]
        assert camera.ingest is not None
        assert PASSWORD not in camera.ingest.display_url
        assert not signals
        status = camera.status()
        assert (status["id"], status["state"], status["analysis_profile"]) == ("gate-cam", "streaming", "sub")
        assert status["device"]["serial"] == "SIM0001"
        assert PASSWORD not in str(status)
        live = await camera.live_jpeg()
        assert live is not None
        assert live[:2] == b"\xff\xd8"

        rtsp_server.stop()
        await until(lambda: any(s.active for s in signals), 15, "camera-offline signal")
        offline = signals[0]
        assert (offline.category, offline.rule, offline.device) == (
            Category.CAMERA_OFFLINE,
            "camera-offline",
            "gate-cam",
        )
        assert offline.department == "public-security"
        assert offline.details["national_id"] == "51042100001320000001"
        assert PASSWORD not in str(offline)
        assert camera.offline

        rtsp_server.start()
        back_at = time.monotonic()
        await until(lambda: len(signals) >= 2, 10, "camera-offline resolved")
        assert time.monotonic() - back_at <= 5.0
        resolved = signals[1]
        assert (resolved.rule, resolved.active) == ("camera-offline", False)
        assert resolved.key == offline.key
        assert not camera.offline


@pytest.mark.network
async def test_keyframe_mode_decodes_only_keyframes(rtsp_server: RtspServer) -> None:
    frames: list[DecodedFrame] = []
    ingest = RtspIngest("c", rtsp_server.url("clip"), display_url=rtsp_server.url("clip"), keyframes_only=True)
    task = asyncio.create_task(ingest.run(frames.append))
    try:
        await until(lambda: ingest.stats.packets >= 100, 15, "100 packets")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stats = ingest.stats
    assert frames
    assert all(f.is_keyframe for f in frames)
    # GOP 25: about one decoded frame per 25 packets read, and every decoded frame is a key frame.
    assert stats.frames_decoded == stats.keyframes
    assert stats.frames_decoded <= stats.packets // 25 + 2
    assert stats.corrupt_packets == 0


@pytest.mark.network
async def test_full_decode_is_rate_limited_to_analysis_fps(rtsp_server: RtspServer) -> None:
    frames: list[DecodedFrame] = []
    ingest = RtspIngest("c", rtsp_server.url("clip"), display_url="clip", analysis_fps=5.0)
    task = asyncio.create_task(ingest.run(frames.append))
    try:
        await until(lambda: ingest.stats.frames_decoded >= 75, 15, "75 decoded frames")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stats = ingest.stats
    assert stats.keyframes < stats.frames_decoded  # every frame decoded, not only key frames
    assert stats.frames_delivered < stats.frames_decoded / 2
    assert any(not f.is_keyframe for f in frames)


async def test_pullpoint_fault_reboot_and_silence_are_resubscribed(onvif_sim: OnvifCameraSim, tmp_path: Path) -> None:
    signals: list[Signal] = []
    store = EvidenceStore(tmp_path / "evidence", budget_bytes=10_000_000)
    cfg = _config(onvif_sim, event_quiet_s=5.0, stream={"mode": "snapshot", "snapshot_interval_s": 0.5})
    camera = Camera(cfg, password=PASSWORD, evidence=store, pull_timeout_s=1.0)
    async with running_camera(camera, signals):
        await until(lambda: camera.stats.subscriptions == 1 and camera.stats.events >= 3, 10, "first subscription")

        onvif_sim.tamper(True)
        await until(lambda: any(s.rule == "camera-tamper" and s.evidence for s in signals), 10, "tamper + evidence")
        tamper = [s for s in signals if s.rule == "camera-tamper"]
        assert tamper[0].active and tamper[0].category is Category.CAMERA_TAMPER
        evidence = tamper[-1].evidence
        assert evidence is not None
        got = store.get(evidence.ref)
        assert got is not None and got[1] == "image/jpeg" and got[0][:2] == b"\xff\xd8"

        onvif_sim.kill_subscriptions()  # SOAP fault on the next pull
        await until(lambda: camera.stats.subscriptions == 2, 10, "resubscription after a fault")
        onvif_sim.tamper(False)
        await until(lambda: any(s.rule == "camera-tamper" and not s.active for s in signals), 10, "tamper end")

        onvif_sim.reboot(downtime_s=1.0)
        await until(lambda: camera.stats.subscriptions == 3, 15, "resubscription after a reboot")

        onvif_sim.kill_subscriptions(quiet=True)  # answers, never delivers
        await until(lambda: camera.stats.quiet_resubscriptions == 1, 15, "resubscription after silence")
        await until(lambda: camera.stats.subscriptions == 4, 5, "fourth subscription")
        assert onvif_sim.live_subscriptions >= 1
        assert not camera.offline  # snapshots kept flowing through all of it


async def test_camera_motion_gates_analysis(onvif_sim: OnvifCameraSim) -> None:
    frames: list[DecodedFrame] = []
    signals: list[Signal] = []
    cfg = _config(onvif_sim, gating="camera_motion", stream={"mode": "snapshot", "snapshot_interval_s": 0.2})
    camera = Camera(cfg, password=PASSWORD, frame_sink=frames.append, pull_timeout_s=1.0)
    async with running_camera(camera, signals):
        await until(lambda: camera.snapshot_stats.frames_decoded >= 3, 10, "snapshots")
        assert not frames
        onvif_sim.motion(True)
        await until(lambda: len(frames) >= 2, 10, "frames while the camera reports motion")
        assert frames[0].luma.shape == (360, 640)
    assert not [s for s in signals if s.rule == "camera-motion"]  # gating only, no incident


async def test_rtsp_credentials_never_reach_logs_or_errors(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from drivers.onvif import redact_url, with_credentials
    from tests.integration.cameras._peers import free_port

    url = with_credentials(f"rtsp://127.0.0.1:{free_port()}/main", USER, PASSWORD)
    ingest = RtspIngest("gate-cam", url, display_url=redact_url(url), open_timeout_s=1.0, reconnect_max_s=0.2)
    task = asyncio.create_task(ingest.run(lambda _: None))
    await until(lambda: ingest.stats.failures >= 2, 10, "two failed opens")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    out, err = capfd.readouterr()
    assert ingest.stats.last_error
    for text in (caplog.text, out, err, ingest.stats.last_error, repr(ingest)):
        assert PASSWORD not in text
        assert "S3cret" not in text
    assert "rtsp://127.0.0.1:" in caplog.text


async def test_a_stop_right_after_connecting_closes_the_onvif_sessions(onvif_sim: OnvifCameraSim) -> None:
    # Cancelled the moment it is connected (a stop while the stream is still opening): every exit
    # from there closes the session. Camera, ONVIF simulator and client are all real.
    async def start_and_stop() -> None:
        connected = asyncio.Event()
        camera = Camera(_config(onvif_sim, events=False), password=PASSWORD)
        task = asyncio.create_task(camera.run(lambda _s: None, connected.set))
        await asyncio.wait_for(connected.wait(), 15)
        assert camera.session is not None
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled()
        assert camera.session is None

    assert await unclosed_http_reports(start_and_stop) == []
