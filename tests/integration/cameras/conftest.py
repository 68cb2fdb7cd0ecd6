"""Fixtures for camera integration tests: the ONVIF simulator, the GStreamer RTSP server, a clip."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import PASSWORD, USER, RtspServer, free_port, gstreamer_missing


@pytest.fixture
async def onvif_sim() -> AsyncIterator[OnvifCameraSim]:
    async with OnvifCameraSim(username=USER, password=PASSWORD, discovery_port=0) as sim:
        yield sim


@pytest.fixture(scope="session")
def scene_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulators.scene import SceneTimeline, encode_scene

    return encode_scene(tmp_path_factory.mktemp("clip") / "scene.mp4", SceneTimeline(1.0, 3.0, 4.0, 5.0))


@pytest.fixture
def rtsp_server(scene_clip: Path) -> Iterator[RtspServer]:
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(scene_clip, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
