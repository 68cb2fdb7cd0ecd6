"""The demo site, as a newcomer runs it: incidents in the feed within a minute."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.demo import run_demo
from tests.conftest import free_port
from tests.integration.gateway.conftest import feed


async def test_demo_site_shows_incidents_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    stop = asyncio.Event()
    demo = asyncio.create_task(run_demo(port=port, state_dir=tmp_path, stop=stop))
    token = tmp_path / "api_token"
    try:
        for _ in range(100):
            if token.exists():
                break
            await asyncio.sleep(0.1)
        events: list[dict[str, object]] = []
        after = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not events and loop.time() < deadline:
            try:
                after, events = await feed(port, after=after, wait=10, token=token.read_text().strip())
            except OSError:
                await asyncio.sleep(0.5)  # the API is not up yet
    finally:
        stop.set()
        assert await asyncio.wait_for(demo, 15) == 0
    assert events, "no incident within a minute"
    first = events[0]
    assert first["type"] == "township.edge.incident.opened"
    assert first["data"]["place"]["device"] == "river-level-01"  # type: ignore[index]
