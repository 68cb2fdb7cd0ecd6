"""The demo site, as a newcomer runs it: incidents in the feed within a minute."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np

from gateway.demo import run_demo
from tests.conftest import free_port
from tests.integration.gateway.conftest import feed


async def test_demo_site_shows_incidents_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    stop = asyncio.Event()
    demo = asyncio.create_task(run_demo(port=port, state_dir=tmp_path, stop=stop))
    token_file = tmp_path / "api_token"
    events: list[dict[str, Any]] = []
    try:
        for _ in range(100):
            if token_file.exists():
                break
            await asyncio.sleep(0.1)
        token = token_file.read_text().strip()
        after = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        want = {"intrusion", "threshold-breach"}
        while loop.time() < deadline and not want <= {e["data"]["category"] for e in events}:
            try:
                after, more = await feed(port, after=after, wait=10, token=token)
                events += more
            except OSError:
                await asyncio.sleep(0.5)  # the API is not up yet
        intrusion = next((e for e in events if e["data"]["category"] == "intrusion"), None)
        assert intrusion is not None, "no intrusion from the demo camera within a minute"
        # The walker's evidence: a JPEG (of the box in the zone) behind the incident's link.
        evidence = next(
            e["data"]["evidence"] for e in events if e["data"]["category"] == "intrusion" and e["data"]["evidence"]
        )
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s,
            s.get(f"http://127.0.0.1:{port}{evidence['url']}") as r,
        ):
            jpeg = await r.read()
    finally:
        stop.set()
        assert await asyncio.wait_for(demo, 20) == 0
    categories = {e["data"]["category"] for e in events}
    assert {"intrusion", "threshold-breach"} <= categories, categories
    # A newcomer's first minute shows the scene's incidents, not a false camera-offline.
    assert "camera-offline" not in categories, categories
    assert intrusion["data"]["place"]["device"] == "cam-demo-gate"
    assert intrusion["data"]["place"]["zone"] == "gate"
    assert jpeg[:2] == b"\xff\xd8"
    # in colour: the decoder's chroma planes reached the vision stage (the scene's grass and sky)
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    assert float(cv2.cvtColor(picture, cv2.COLOR_BGR2HSV)[..., 1].mean()) > 15
    river = next(e for e in events if e["data"]["category"] == "threshold-breach")
    assert river["data"]["place"]["device"] == "river-level-01"
