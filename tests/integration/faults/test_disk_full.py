"""A state disk that fills up (a real, tiny tmpfs) and frees again: the daemon degrades, never dies."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults import fill_disk, mount_tmpfs, umount
from edge_core.signals import Category
from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import api, connected, feed, publisher, receiver, running, until, write_site

RULES = """
[[rules]]
kind = "threshold"
id = "high"
point = "level"
above = 3.5
hysteresis = 0.2
cooldown_s = 0
update_interval_s = 3600
severity = "major"

[[rules]]
kind = "threshold"
id = "watch"
point = "level"
above = 2.5
hysteresis = 0.2
cooldown_s = 0
update_interval_s = 3600
severity = "minor"
"""


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/state on a 4 MB tmpfs of its own."""
    state = tmp_path / "state"
    state.mkdir()
    if (why := mount_tmpfs(state)) is not None:
        pytest.skip(why)
    try:
        yield state
    finally:
        umount(state)


def reading(v: float) -> str:
    return json.dumps({"v": v, "ts": time.time()})


async def test_a_full_state_disk_degrades_then_recovers(
    mosquitto: Mosquitto, tmp_path: Path, small_state: Path
) -> None:
    async with receiver() as rec:
        site, port = write_site(tmp_path, mosquitto.port, webhook_port=rec.port, rules=RULES)
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            for v in (4.0, 2.0):  # both rules open and resolve: 4 events, delivered
                pub.publish("t/river/000/level", reading(v), qos=1)
                await asyncio.sleep(0.2)
            await until(lambda: len(rec.events) >= 4, 10, "the first events delivered")
            delivered = gw.outbox.delivered_seq
            assert delivered >= 4

            filler = await asyncio.to_thread(fill_disk, small_state)
            for v in (4.0, 2.0, 4.0):
                pub.publish("t/river/000/level", reading(v), qos=1)
                await asyncio.sleep(0.3)
            await until(lambda: gw.outbox.storage_full is not None, 10, "the disk seen full")
            await asyncio.sleep(1.5)  # a few retries of the held group
            # Degraded: minor events are refused while the disk is full, major ones kept.
            for v in (2.0, 3.0, 4.0):
                pub.publish("t/river/000/level", reading(v), qos=1)
                await asyncio.sleep(0.3)
            assert gw.outbox.refused_total >= 1

            # Still up: the API answers, the broker link and its readings go on.
            status, _ = await api(port, "GET", "/healthz")
            assert status == 200
            assert all(s.health.state.value == "connected" for s in gw.supervisors if s.name.startswith("mqtt"))
            faults = [i for i in gw.incidents.open if i.category is Category.GATEWAY_FAULT]
            assert faults and "disk full" in faults[0].summary
            high = next(i for i in gw.incidents.open if i.rule == "high")
            # Answered 200 only if the held change found room (the reserve); 503 says retry.
            status, body = await api(port, "POST", f"/api/v1/incidents/{high.id}/ack", {"by": "operator"})
            assert status in (200, 503), body
            assert gw.outbox.storage_full is not None

            await asyncio.to_thread(filler.unlink)
            await until(lambda: gw.outbox.storage_full is None, 10, "storing again")
            await until(
                lambda: not [i for i in gw.incidents.open if i.category is Category.GATEWAY_FAULT], 10, "fault resolved"
            )
            # The platform's retry of the ack now answers 200.
            status, body = await api(port, "POST", f"/api/v1/incidents/{high.id}/ack", {"by": "operator"})
            assert status == 200, body
            _after, events = await feed(port, after=0)

    seqs = [int(e["sequence"]) for e in events]
    # Delivered events were pruned to make room; what was held came through with no gap.
    assert seqs[0] > delivered
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    rules = {e["data"]["detector"]["rule"] for e in events}
    assert "high" in rules and "state-disk-full" in rules
    with sqlite3.connect(small_state / "outbox.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
