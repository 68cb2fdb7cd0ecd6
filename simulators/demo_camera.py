"""The demo site's simulated camera: the generated scene, behind the ONVIF simulator.

``async with demo_camera(state_dir) as cam:`` encodes the scene once (cached in ``state_dir``),
starts the GStreamer RTSP server with Debian's ``/usr/bin/python3`` when it is available, starts
the ONVIF simulator (with its WS-Discovery responder) and yields a :class:`DemoCamera` whose
``device`` is a ``[[devices]]`` mapping ready for :class:`edge_config.camera.CameraDevice`.

Without GStreamer the stream URL points at the clip file itself, which the ingest replays in real
time and in a loop through the same PyAV path (``RtspIngest(replay=True)``), so the demo still
works on a fresh machine in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from simulators.onvif_camera import OnvifCameraSim
from simulators.scene import SCENE_ZONE, SceneTimeline, encode_scene

__all__ = ["DemoCamera", "demo_camera", "gstreamer_available"]

SYSTEM_PYTHON = "/usr/bin/python3"
_GI_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('appsrc', 'qtdemux', 'h264parse', 'rtph264pay') if not Gst.ElementFactory.find(e)]; "
    "raise SystemExit(' '.join(missing) or None)"
)
# GStreamer's RTSP server, run by Debian's python3 (python3-gi is no pip package). It is a test peer,
# so it lives under tests/: in a checkout the demo streams through it; installed without the
# checkout, the demo replays its clip instead.
_SERVER = Path(__file__).resolve().parents[1] / "tests" / "peers" / "rtsp_server.py"


@dataclasses.dataclass
class DemoCamera:
    """What the demo needs to know about its camera."""

    sim: OnvifCameraSim
    clip: Path
    rtsp_port: int | None
    """None when the clip is replayed from the file (no GStreamer)."""
    device: dict[str, Any]
    password_file: Path
    _server: subprocess.Popen[bytes] | None = None

    def pull_the_plug(self) -> None:
        """Stop the RTSP server (the camera goes offline after its ``offline_after_s``)."""
        if self._server is not None:
            self._server.kill()
            self._server.wait(timeout=10)
            self._server = None

    async def plug_back(self) -> None:
        """Start the RTSP server again on the same port."""
        if self.rtsp_port is not None and self._server is None:
            self._server = await asyncio.to_thread(_start_server, self.clip, self.rtsp_port)


def _gstreamer_available() -> bool:
    if not _SERVER.is_file():
        return False
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", _GI_CHECK], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


async def gstreamer_available() -> bool:
    """Whether Debian's python3 can run the GStreamer RTSP server here."""
    return await asyncio.to_thread(_gstreamer_available)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(clip: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(_SERVER), "--port", str(port), "--clip", str(clip), "--no-live"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"READY"):
        proc.kill()
        raise RuntimeError("the GStreamer RTSP server did not start")
    return proc


def _prepare(state_dir: Path, password: str) -> tuple[Path, Path]:
    state_dir.mkdir(parents=True, exist_ok=True)
    clip = state_dir / "demo-scene.mp4"
    if not clip.exists():
        encode_scene(clip, SceneTimeline())
    password_file = state_dir / "demo-camera.password"
    password_file.write_text(password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return clip, password_file


@contextlib.asynccontextmanager
async def demo_camera(
    state_dir: Path,
    *,
    device_id: str = "cam-demo-gate",
    password: str = "demo-camera-pass",
    discovery_port: int | None = 0,
    use_gstreamer: bool | None = None,
) -> AsyncIterator[DemoCamera]:
    """Run the demo camera for the duration of the block (see the module docstring)."""
    clip, password_file = await asyncio.to_thread(_prepare, state_dir, password)
    if use_gstreamer is None:
        use_gstreamer = await gstreamer_available()
    server: subprocess.Popen[bytes] | None = None
    rtsp_port: int | None = None
    if use_gstreamer:
        rtsp_port = _free_port()
        server = await asyncio.to_thread(_start_server, clip, rtsp_port)
        main, sub = f"rtsp://127.0.0.1:{rtsp_port}/main", f"rtsp://127.0.0.1:{rtsp_port}/sub"
    else:
        main = sub = str(clip)
    sim = OnvifCameraSim(password=password, rtsp_main=main, rtsp_sub=sub, discovery_port=discovery_port)
    try:
        async with sim:
            device: dict[str, Any] = {
                "kind": "onvif",
                "id": device_id,
                "name": "Demo gate camera (simulated)",
                "host": "127.0.0.1",
                "port": sim.port,
                "username": sim.username,
                "password": {"file": str(password_file)},
                "department": "public-security",
                # The product's stall and offline limits: the demo shows what a site would see,
                # and a stream hiccup while the box is still busy starting (a first run builds
                # caches) must not greet a newcomer with a camera-offline incident.
                "stream": {"mode": "rtsp", "analysis_fps": 5.0, "reconnect_max_s": 2.0},
                "vision": {"zones": [{"name": "gate", "kind": "restricted", "points": [list(p) for p in SCENE_ZONE]}]},
                "location": {"zone": "Demo gate"},
            }
            cam = DemoCamera(sim, clip, rtsp_port, device, password_file, server)
            try:
                yield cam
            finally:
                cam.pull_the_plug()
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=10)
