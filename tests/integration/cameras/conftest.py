"""Fixtures for camera integration tests: the ONVIF simulator, the GStreamer RTSP server, a clip."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# `simulators/` is a top-level package of the repository but not an installed one: make it
# importable however pytest is started.
_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from simulators.onvif_camera import OnvifCameraSim  # noqa: E402

USER = "admin"
PASSWORD = "S3cret-pass!"


@pytest.fixture
async def onvif_sim() -> AsyncIterator[OnvifCameraSim]:
    async with OnvifCameraSim(username=USER, password=PASSWORD, discovery_port=0) as sim:
        yield sim
