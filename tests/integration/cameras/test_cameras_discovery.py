"""WS-Discovery against the simulator's responder on loopback."""

from __future__ import annotations

import asyncio
import io
import tomllib

import pytest

from drivers.discovery import discover, discover_command
from edge_config.camera import CameraDevice
from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import free_port


async def test_discover_finds_the_simulator(onvif_sim: OnvifCameraSim) -> None:
    cams = await discover(1.0, target=("127.0.0.1", onvif_sim.discovery_port or 0))
    assert len(cams) == 1
    cam = cams[0]
    assert (cam.host, cam.port) == ("127.0.0.1", onvif_sim.port)
    assert cam.endpoint == f"urn:uuid:{onvif_sim.endpoint_uuid}"
    assert (cam.manufacturer, cam.model, cam.serial) == ("TownshipSim", "SIM-CAM-1", "SIM0001")
    assert cam.info_source == "device"
    assert "onvif://www.onvif.org/hardware/SIM-CAM-1" in cam.scopes
    assert "NetworkVideoTransmitter" in cam.types


async def test_scopes_are_used_when_the_camera_wants_credentials() -> None:
    async with OnvifCameraSim(discovery_port=0, anonymous_device_info=False, model="DS-2CD") as sim:
        cams = await discover(1.0, target=f"127.0.0.1:{sim.discovery_port}")
    assert [(c.manufacturer, c.model, c.serial, c.info_source) for c in cams] == [
        ("TownshipSim", "DS-2CD", "", "scopes")
    ]


async def test_nobody_answers_within_the_bound() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await discover(0.5, target=("127.0.0.1", free_port())) == []
    assert loop.time() - started < 2.0


async def test_discover_command_prints_a_table_and_config_that_validates(onvif_sim: OnvifCameraSim) -> None:
    target = f"127.0.0.1:{onvif_sim.discovery_port}"
    table, stanza = io.StringIO(), io.StringIO()
    # discover_command runs its own event loop, as the CLI does: run it in a thread.
    rc = await asyncio.to_thread(discover_command, 1.0, False, target=target, out=table)
    assert rc == 0
    lines = table.getvalue().splitlines()
    assert lines[0].split()[:4] == ["ADDRESS", "MANUFACTURER", "MODEL", "SERIAL"]
    assert lines[1].split()[:4] == [f"127.0.0.1:{onvif_sim.port}", "TownshipSim", "SIM-CAM-1", "SIM0001"]

    rc = await asyncio.to_thread(discover_command, 1.0, True, target=target, out=stanza)
    assert rc == 0
    doc = tomllib.loads(stanza.getvalue())
    [device] = doc["devices"]
    cam = CameraDevice.model_validate(device)
    assert (cam.id, cam.host, cam.port) == ("cam-sim0001", "127.0.0.1", onvif_sim.port)
    assert cam.password is not None
    assert cam.password.credential == "cam-sim0001_password"


def test_discover_command_says_when_nothing_answers() -> None:
    out = io.StringIO()
    assert discover_command(0.3, False, target=f"127.0.0.1:{free_port()}", out=out) == 1
    assert out.getvalue() == ""


async def test_edge_gateway_discover_cli(
    onvif_sim: OnvifCameraSim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    monkeypatch.setenv("EDGE_GATEWAY_DISCOVERY_TARGET", f"127.0.0.1:{onvif_sim.discovery_port}")
    rc = await asyncio.to_thread(main, ["discover", "--timeout", "1", "--config"])
    assert rc == 0
    assert f"port = {onvif_sim.port}" in capsys.readouterr().out
