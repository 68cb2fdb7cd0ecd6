"""Helpers for camera integration tests: credentials, the GStreamer RTSP server as a child process."""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from drivers.camera import Camera
from edge_config.camera import CameraDevice
from edge_core.signals import Signal
from simulators.onvif_camera import OnvifCameraSim

_ROOT = Path(__file__).resolve().parents[3]

USER = "admin"
PASSWORD = "S3cret-pass!"


GI_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('appsrc', 'qtdemux', 'h264parse', 'rtph264pay') if not Gst.ElementFactory.find(e)]; "
    "raise SystemExit(' '.join(missing) or None)"
)
SYSTEM_PYTHON = "/usr/bin/python3"


async def unclosed_http_reports(scenario: Callable[[], Awaitable[None]]) -> list[str]:
    """Run ``scenario``, collect garbage, and return aiohttp's reports of sessions or connectors
    that were dropped without being closed (it sends them to the loop's exception handler)."""
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(str(context.get("message"))))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            await scenario()
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
    return [m for m in reports if "Unclosed" in m]


def camera_config(sim: OnvifCameraSim, timings: dict[str, Any], /, **overrides: Any) -> CameraDevice:
    """The simulator as a site's camera, ``gate-cam``: ``timings`` is the test's own ``stream``
    table, merged with any ``stream=`` override; other keys override the stanza's."""
    data: dict[str, Any] = {
        "kind": "onvif",
        "id": "gate-cam",
        "host": "127.0.0.1",
        "port": sim.port,
        "username": USER,
        "password": {"file": "unused"},
    }
    data |= overrides | {"stream": timings | overrides.get("stream", {})}
    return CameraDevice.model_validate(data)


def gstreamer_missing() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None if it can."""
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", GI_CHECK], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} unusable: {exc}"
    if r.returncode != 0:
        detail = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return (
            f"GStreamer RTSP server not available to /usr/bin/python3 ({detail[0][:120]}); install Debian packages "
            "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base "
            "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """The GStreamer RTSP server script as a child process that can be stopped and restarted."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip = clip
        self.port = port
        self.proc: Any = None

    def url(self, mount: str = "clip") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(_ROOT / "tests" / "peers" / "rtsp_server.py"),
                "--port",
                str(self.port),
                "--clip",
                str(self.clip),
                "--no-live",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@asynccontextmanager
async def running_camera(camera: Camera, signals: list[Signal]) -> AsyncIterator[asyncio.Task[None]]:
    """``camera.run`` as a task until the block ends, once it is connected; cancelled after."""
    connected = asyncio.Event()
    task = asyncio.create_task(camera.run(signals.append, connected.set))
    try:
        await asyncio.wait_for(connected.wait(), 15)
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
