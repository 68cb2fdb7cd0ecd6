"""Sensor anomalies: detector scores through the daemon into incidents with a window as evidence."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import numpy as np

from gateway.app import Gateway
from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import TOKEN, connected, feed, publisher, running, until, write_site

RULE = """
[[rules]]
kind = "anomaly"
id = "level-anomaly"
point = "level"
severity = "minor"
resolve_after_s = 1200
evidence_readings = 40
"""


def series(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(5 + 0.3 * np.sin(np.arange(n) / 20) + rng.normal(0, 0.05, n))


async def publish_all(gw: Gateway, port: int, values: list[float], t0: float) -> None:
    before = gw.metrics.readings.values.get("river-000", 0)
    async with publisher(port) as pub:
        for i, v in enumerate(values):
            # One reading a minute on the device's clock, sent as a burst (a back-fill).
            pub.publish("t/river/000/level", json.dumps({"v": v, "ts": t0 + 60 * i}), qos=1)
        # Stay connected until the gateway has them all: a disconnect can drop what is in flight.
        target = before + len(values)
        await until(lambda: gw.metrics.readings.values.get("river-000", 0) >= target, 30, "all readings")


async def test_anomaly_opens_an_incident_with_its_window_and_survives_restart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    site, port = write_site(tmp_path, mosquitto.port, rules=RULE)
    # A fixed start on the device's clock: the detector has an hour-of-day channel, so a start
    # taken from the wall clock would make the scores depend on when the test runs.
    t0 = 1_790_000_000.0
    values = [*series(400, 1), 9.0, *series(60, 2)]
    async with running(site) as gw:
        await connected(gw)
        await publish_all(gw, mosquitto.port, values, t0)
        await until(lambda: gw.outbox.committed_seq >= 3, 10, "three events")
        _, events = await feed(port)

    # The window is written off the event loop while the burst goes on, so its update may come
    # before or after the resolution; both carry the same incident.
    kinds = {e["type"].rsplit(".", 1)[1]: e["data"] for e in events}
    assert events[0]["type"] == "township.edge.incident.opened"
    assert sorted(kinds) == ["opened", "resolved", "updated"]
    assert {d["category"] for d in kinds.values()} == {"sensor-anomaly"}
    assert len({d["incident_id"] for d in kinds.values()}) == 1
    opened = kinds["opened"]
    assert opened["detector"]["rule"] == "level-anomaly" and opened["detector"]["value"] == 9.0
    assert opened["detector"]["name"] == "ensemble"  # the algorithm, for a platform comparing detectors
    assert opened["detector"]["score"] >= 0.2432 and opened["detector"]["threshold"] == 0.2432
    evidence = kinds["updated"]["evidence"]
    assert evidence["media_type"] == "application/json"

    async with running(site) as gw:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            async with s.get(f"http://127.0.0.1:{port}{evidence['url']}") as r:
                assert r.status == 200
                window = await r.json()
            assert evidence["preview_url"].startswith("/api/v1/evidence/")
            async with s.get(f"http://127.0.0.1:{port}{evidence['preview_url']}") as r:
                assert r.status == 200 and r.content_type == "image/png"
                assert (await r.read())[:8] == b"\x89PNG\r\n\x1a\n"
        # Three quarters before the onset, the anomalous reading, and the rest after it.
        assert len(window["readings"]) == 40 and window["columns"] == ["time", "value", "score"]
        assert [v for _t, v, _s in window["readings"]].index(9.0) == 30

        # The detector's learning survived the restart: a spike right away (no fresh warm-up of
        # 200 readings) is still recognised.
        await connected(gw)
        after = gw.outbox.committed_seq
        await publish_all(gw, mosquitto.port, [*series(5, 3), 9.5], t0 + 60 * len(values))
        _, later = await feed(port, after=after, wait=10)
    assert [(e["type"].rsplit(".", 1)[1], e["data"]["detector"]["value"]) for e in later][:1] == [("opened", 9.5)]
