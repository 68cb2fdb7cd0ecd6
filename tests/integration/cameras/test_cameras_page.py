"""A camera on the technician's status page, in a real browser: its live view and its caption."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.demo import device_stanza, toml_value
from simulators.demo_camera import demo_camera
from tests.conftest import free_port
from tests.integration.gateway.conftest import TOKEN, running, until
from tests.integration.web.browser import browser


async def test_live_view_and_caption_with_stream_state_and_motion_profile(tmp_path: Path, scene_clip: Path) -> None:
    shutil.copy(scene_clip, tmp_path / "demo-scene.mp4")  # skip encoding the full demo scene
    async with demo_camera(tmp_path, use_gstreamer=False) as cam:
        api_port = free_port()
        (tmp_path / "api_token").write_text(TOKEN)
        site = tmp_path / "site.toml"
        device = dict(cam.device, password={"file": str(cam.password_file)})
        site.write_text(
            f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
            '[site]\nbox_id = "box-1"\ntownship = "t"\nvillage = "v"\n'
            f'[api]\nport = {api_port}\ntoken = {{ file = "api_token" }}\n' + device_stanza(device)
        )
        async with running(site) as gw, browser(tmp_path / "profile") as page:
            await until(lambda: bool(gw.camera_set.status()) and gw.camera_set.status()[0]["frames"] > 0, 20, "frames")
            await page.goto(f"http://127.0.0.1:{api_port}/#token={TOKEN}")
            fig = f"document.querySelector('[data-camera=\"{cam.device['id']}\"]')"
            # the live view: the camera's video over WebRTC, or (this Chromium is not told to use
            # loopback for WebRTC) the latest analysed frame as JPEG; the page says which
            await page.wait_for(
                f"{fig} !== null && ({fig}.querySelector('img').naturalWidth === 640"
                f" || {fig}.querySelector('video').videoWidth === 640)",
                20,
            )
            # the caption: the stream's state and the motion profile in force (the clock decides:
            # the demo scene is in colour, so the camera is never seen in its IR mode)
            await page.wait_for(f"/\\(streaming, (day|night)\\)$/.test({fig}.querySelector('figcaption').textContent)")
            status = gw.camera_set.status()[0]
            assert status["vision_profile"] in ("day", "night")
            assert status["ir_mode"] is None
