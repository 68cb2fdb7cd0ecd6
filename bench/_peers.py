"""Real peers for benchmarks: a mosquitto on a free loopback port, and the demo scene's clip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from simulators.scene import SceneTimeline, encode_scene

__all__ = ["free_port", "mosquitto", "scene_clip", "site_header"]


def scene_clip() -> Path:
    """The demo scene (640x360, GOP 25, 768 kbit/s, 12 s), encoded once into the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-gateway-bench"
    path = cache / "scene-640x360-gop25-768k.mp4"
    if not path.exists():
        try:
            encode_scene(path, SceneTimeline(seconds=12.0))
        except OSError:
            path = encode_scene(Path(tempfile.mkdtemp()) / "scene.mp4", SceneTimeline(seconds=12.0))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class mosquitto:
    """Runs Debian's mosquitto on 127.0.0.1 for the duration of a ``with`` block."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self._cpus = cpus

    def __enter__(self) -> int:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed: apt install mosquitto (scripts/test does)")
        self._dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        conf = Path(self._dir.name) / "m.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 1000000\nmax_inflight_messages 1000\nlog_dest none\n"
        )
        cpus = self._cpus
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self.port
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(5)
        self._dir.cleanup()


def site_header(state: Path) -> str:
    """The identity, state and API part of a bench site file (token from the file 'token')."""
    return f"""state_dir = "{state}"
[site]
box_id = "bench"
township = "t"
village = "v"
[api]
port = {free_port()}
token = {{ file = "token" }}
"""
