"""The fleet, short: real gateway daemons into a real three-node cluster (R3), the stream
leader SIGKILLed and restarted and one gateway SIGKILLed and restarted on the way. Every event
each box committed reaches the county consumer once, in order; the box that also pushes over MQTT
to NATS's MQTT listener loses nothing. (`python -m bench.fleet` is the
long run, with 20 boxes, a cut uplink and a whole-cluster restart.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._nats import nats_server_binary
from bench.fleet import run

pytestmark = pytest.mark.network


@pytest.mark.timeout(240)
async def test_three_boxes_through_a_leader_kill_lose_and_repeat_nothing(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (scripts/test installs Debian's package)")
    lines: list[str] = []
    r = await run(
        tmp_path,
        boxes=3,
        rate_hz=4.0,
        seconds=20.0,  # the leader dies at 1.6 s, back at 3 s; the box dies between 6 and 11 s
        cut_s=0.0,
        sigkills=1,
        cluster_restart=False,
        mqtt_boxes=1,
        say=lines.append,
    )
    assert r.events > 100, lines
    assert (r.lost, r.duplicated, r.out_of_order) == (0, 0, 0), lines
    # One box also pushes over MQTT (QoS 1, persistent session) to the leader's MQTT listener: its
    # cursor moves only on PUBACK, which NATS gives once the message is in JetStream, so nothing
    # may be lost through the kill; a repeat is allowed (at least once) but counted.
    assert r.mqtt_events > 50, lines
    assert r.mqtt_lost == 0, (r.mqtt_lost, r.mqtt_duplicated, lines)
