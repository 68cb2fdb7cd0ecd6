"""`edge-gateway doctor` names a camera that cannot gate on its own motion, from what a running
gateway's API says of it (here: the status of a real Camera against a simulator without Events)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from drivers.camera import Camera
from gateway.doctor import run_doctor
from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import PASSWORD, USER, camera_config
from tests.sites import one_terminal_site


async def _status_of_a_camera_without_events() -> dict[str, Any]:
    async with OnvifCameraSim(username=USER, password=PASSWORD, events=False) as sim:
        cfg = camera_config(sim, {"mode": "snapshot", "snapshot_interval_s": 0.2}, gating="camera_motion")
        camera = Camera(cfg, password=PASSWORD, frame_sink=lambda _f: None)
        connected = asyncio.Event()
        task = asyncio.create_task(camera.run(lambda _s: None, connected.set))
        try:
            await asyncio.wait_for(connected.wait(), 15)
            return camera.status()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def gateway_api() -> AsyncIterator[int]:
    """A stand-in for a running gateway's API, listing one camera as the real Camera reports it."""
    status = await _status_of_a_camera_without_events()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def cameras(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer t0ken":
            return web.json_response({"title": "Unauthorized"}, status=401)
        return web.json_response({"cameras": [status]})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/cameras", cameras)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_doctor_says_which_camera_cannot_gate_and_what_to_do(
    tmp_path: Path, gateway_api: int, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "cam-pass").write_text("x")
    site = tmp_path / "site.toml"
    site.write_text(
        one_terminal_site(tmp_path / "state", api=f'port = {gateway_api}\ntoken = {{ file = "token" }}')
        + '[[devices]]\nkind = "onvif"\nid = "gate-cam"\nhost = "127.0.0.1"\nport = 1\n'
        + 'username = "admin"\npassword = { file = "cam-pass" }\ngating = "camera_motion"\n'
    )
    await run_doctor(site, unit=tmp_path / "no-unit")
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "camera gate-cam cannot gate" in x)
    assert line.startswith("WARN  camera gate-cam cannot gate on the camera's own motion: the camera has no ONVIF")
    assert 'every frame is analysed ("always")' in line
    assert 'set gating = "always" for gate-cam in the site file' in out
