"""Runs inside a network namespace holding only lo: daniela-hase/onvif-server as a camera, driven
by our discovery, ONVIF session and Camera; prints one JSON object of what they saw.

usage: unshare -rn python -m tests.integration.cameras._netns_peer SERVER_DIR

The peer binds 0.0.0.0:3702 for WS-Discovery, hence the namespace: lo gets multicast and a route
for 239.0.0.0/8, and nothing leaves the box. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVER_PORT = 8081
_CONFIG = f"""onvif:
  - mac: 00:00:00:00:00:00
    hostname: 127.0.0.1
    ports:
      server: {SERVER_PORT}
      rtsp: 8554
    name: InteropCam
    uuid: 1714a629-ebe5-4bb8-a430-c18ffd8fa5f6
    highQuality:
      rtsp: /main
      width: 640
      height: 360
      framerate: 25
      bitrate: 1024
      quality: 4
    lowQuality:
      rtsp: /sub
      width: 320
      height: 180
      framerate: 10
      bitrate: 256
      quality: 1
    target:
      hostname: 127.0.0.1
      ports:
        rtsp: 8555
"""


def _lo_with_multicast() -> None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "route", "add", "239.0.0.0/8", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"onvif-server did not listen on {port} within {timeout:g} s")


async def _scenario() -> dict[str, Any]:
    from drivers.camera import Camera
    from drivers.discovery import discover
    from drivers.onvif import OnvifSession
    from edge_config.camera import CameraDevice

    out: dict[str, Any] = {}
    cams = await discover(2.0)
    out["discovered"] = [{"address": c.address, "xaddrs": list(c.xaddrs), "info": c.info_source} for c in cams]

    async with OnvifSession("interop-cam", "127.0.0.1", SERVER_PORT, "admin", "any", timeout_s=5) as s:
        assert s.info is not None
        out["info"] = {"manufacturer": s.info.manufacturer, "model": s.info.model}
        out["clock_skew_s"] = s.clock_skew_s
        out["clock_source"] = s.clock_source
        out["events_unsupported"] = s.events_unsupported
        out["profiles"] = [
            {"token": p.token, "width": p.width, "stream_uri": p.stream_uri, "valid_s": p.stream_uri_valid_s}
            for p in s.profiles
        ]
        snap = await s.snapshot(s.profiles[0].token)
        out["snapshot_type"] = snap.content_type
        out["skew_again"] = await s.camera_time_skew()

    cfg = CameraDevice.model_validate(
        {
            "kind": "onvif",
            "id": "interop-cam",
            "host": "127.0.0.1",
            "port": SERVER_PORT,
            "username": "admin",
            "password": {"file": "unused"},
            "gating": "camera_motion",
            "stream": {"mode": "snapshot", "snapshot_interval_s": 0.2},
        }
    )
    frames: list[object] = []
    camera = Camera(cfg, password="any", frame_sink=frames.append)
    connected = asyncio.Event()
    task = asyncio.create_task(camera.run(lambda _s: None, connected.set))
    try:
        await asyncio.wait_for(connected.wait(), 15)
        deadline = time.monotonic() + 10
        while len(frames) < 3 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        out["camera"] = {k: camera.status()[k] for k in ("analysed", "gating_in_force", "gating_fallback")}
        out["live_view_jpeg"] = (await camera.live_jpeg() or b"")[:2] == b"\xff\xd8"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out


def main() -> int:
    server_dir = Path(sys.argv[1])
    _lo_with_multicast()
    config = server_dir / "edge-test.yaml"
    config.write_text(_CONFIG)
    node = subprocess.Popen(
        ["node", "main.js", str(config)], cwd=server_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_port(SERVER_PORT, 20)
        result = asyncio.run(asyncio.wait_for(_scenario(), 60))
    except Exception as exc:  # the parent test shows it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        node.kill()
        node.wait(timeout=10)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
