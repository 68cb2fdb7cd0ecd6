"""A technician's path through the daemon: discover the camera, paste the printed stanza into the
site file, run the gateway, and watch the camera go offline and come back in the feed when the
RTSP server's plug is pulled."""

from __future__ import annotations

import asyncio
import io
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drivers.discovery import discover_command
from gateway.demo import toml_value
from simulators.demo_camera import demo_camera
from tests.conftest import free_port
from tests.integration.cameras._peers import gstreamer_missing
from tests.integration.gateway.conftest import TOKEN, feed_until, running, until


def offline_in(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["data"]["category"] == "camera-offline" and e["data"]["status"] == status


async def test_discovered_stanza_runs_and_offline_then_online_reaches_the_feed(
    tmp_path: Path, scene_clip: Path
) -> None:
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")
    async with demo_camera(tmp_path, use_gstreamer=True) as cam:
        out = io.StringIO()
        # discover_command runs its own event loop: give it a thread.
        rc = await asyncio.to_thread(discover_command, 2.0, True, target=f"127.0.0.1:{cam.sim.discovery_port}", out=out)
        assert rc == 0
        stanza = out.getvalue()
        parsed = tomllib.loads(stanza)["devices"][0]
        assert (parsed["host"], parsed["port"]) == ("127.0.0.1", cam.sim.port)

        # What the technician edits by hand: where the password is, and how fast to call it offline.
        stanza = stanza.replace(
            f'password = {{ credential = "{parsed["id"]}_password" }}',
            f"password = {toml_value({'file': str(cam.password_file)})}",
        )
        stanza += "offline_after_s = 5.0\nstall_timeout_s = 1.5\nreconnect_max_s = 1.0\n"
        api_port = free_port()
        (tmp_path / "api_token").write_text(TOKEN)
        site = tmp_path / "site.toml"
        site.write_text(
            f'state_dir = "{tmp_path / "state"}"\n[site]\nbox_id = "box-1"\ntownship = "t"\nvillage = "v"\n'
            f'[api]\nport = {api_port}\ntoken = {{ file = "api_token" }}\n' + stanza
        )
        async with running(site) as gw:
            link = f"camera:{parsed['id']}"
            await until(
                lambda: any(s.name == link and s.health.state.value == "connected" for s in gw.supervisors),
                20,
                "the camera link",
            )
            await until(lambda: gw.camera_set.status()[0]["frames"] > 0, 10, "frames from the camera")
            # The live view the status page shows: the latest analysed frame, behind the token.
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
                s.get(f"http://127.0.0.1:{api_port}/api/v1/cameras/{parsed['id']}/snapshot.jpg") as r,
            ):
                assert r.status == 200 and r.content_type == "image/jpeg"
                assert (await r.read())[:2] == b"\xff\xd8"
            # A slow first start may have flagged the camera offline before its first frame: let
            # that settle, so what follows is about the pulled plug only.
            await until(
                lambda: not any(i.rule == "camera-offline" and i.condition_active for i in gw.incidents.incidents),
                15,
                "the camera to be online",
            )
            cam.pull_the_plug()
            after, offline = await feed_until(api_port, gw.outbox.committed_seq, offline_in("open"), 30)
            assert offline, "no camera-offline incident after the plug was pulled"
            await cam.plug_back()
            _, back = await feed_until(api_port, after, offline_in("resolved"), 30)
    assert back, "the camera-offline incident did not resolve after the plug went back in"
    assert back[0]["type"] == "township.edge.incident.resolved"
    assert back[0]["subject"] == offline[0]["subject"]
