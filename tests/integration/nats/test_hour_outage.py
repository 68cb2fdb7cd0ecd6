"""An hour without uplink at the box's normal rate: everything arrives afterwards, in order, and
the outbox's 'capacity hours' said beforehand that the hour would fit (simulated clock: the events
carry the times they would have had, an hour's worth appended in seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import types
from pathlib import Path

import pytest

import gateway.outbox as outbox_module
from bench._nats import NatsCluster
from edge_core.backoff import Backoff
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.supervisor import Supervisor
from tests.conftest import cancel_and_wait
from tests.integration.nats.test_nats_uplink import _pusher, _stored, _until

pytestmark = pytest.mark.network

RATE_S = 10.0  # one event every ten seconds: a busy village box
SIZE = 1000  # bytes per event, padded so every event weighs the same


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


def _event(seq: int) -> bytes:
    ev = {"id": f"inc-{seq}.1", "category": "threshold-breach", "sequence": f"{seq:020d}", "pad": ""}
    raw = json.dumps(ev)
    ev["pad"] = "x" * (SIZE - len(raw))
    return json.dumps(ev).encode()


async def test_an_hour_without_uplink_fits_as_capacity_said_and_then_arrives_in_order(
    stream: NatsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(outbox_module, "time", types.SimpleNamespace(time=clock.time))
    per_hour = int(3600 / RATE_S)
    # A budget that holds one and a half hours of this box's events.
    ob = Outbox(
        tmp_path / "outbox.sqlite3",
        budget_bytes=int(1.5 * per_hour * SIZE),
        keep_delivered_s=86400 * 7,
        commit_interval_s=0,
        consumers=("nats",),
        metrics=Metrics(),
    )
    ob.open()
    writer = asyncio.create_task(ob.run())

    def add(n: int) -> None:
        for _ in range(n):
            clock.now += RATE_S
            ob.append(source="urn:t:box-1/river", severity=2, build=_event)

    def uplink() -> asyncio.Task[None]:
        pusher = _pusher(ob, stream, presence_bucket=None)
        return asyncio.create_task(Supervisor(pusher.name, pusher.run, Metrics(), backoff=Backoff(0.1, 1)).run())

    task = uplink()
    try:
        # Two hours at the normal rate with the uplink up: the history the capacity is taken from.
        # (Delivered as it comes, ten minutes at a time, as it would be in real time.)
        chunk = per_hour // 6
        for i in range(1, 13):
            add(chunk)
            await _until(lambda i=i: ob.cursor("nats") >= i * chunk, 60, "the history to be delivered")
        before = await asyncio.to_thread(ob.capacity)
        assert before.covers_hours is not None
        assert 1.3 < before.covers_hours < 1.7, before  # what the status page says: about 1.5 h

        # The uplink goes down for an hour; the box keeps its normal rate.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        add(per_hour)
        await ob.flush()
        during = await asyncio.to_thread(ob.capacity)
        assert during.dropped_total == 0, "capacity said the hour fits, and it did"
        assert during.undelivered_events == per_hour
        assert during.covers_hours is not None and 0.3 < during.covers_hours < 0.7, during

        task = uplink()
        await _until(lambda: ob.cursor("nats") >= 3 * per_hour, 120, "the hour's backlog to be delivered")
    finally:
        await cancel_and_wait(task, writer)
        ob.close()
    stored = await _stored(stream, 3 * per_hour)
    assert [s for s, _ in stored] == list(range(1, 3 * per_hour + 1)), "lost, repeated or out of order"
