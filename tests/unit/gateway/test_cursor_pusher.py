"""A push channel's pump must not sleep through an event committed while it was reading."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from gateway.metrics import Metrics
from gateway.outbox import Outbox, StoredEvent
from gateway.upstream import CursorPusher
from tests.conftest import cancel_and_wait


class _Recorder(CursorPusher):
    name = "upstream:test"
    consumer = "test"

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(outbox, Metrics())
        self.got: list[int] = []

    async def _deliver(self, seq: int, body: bytes) -> None:
        self.got.append(seq)


async def test_an_event_committed_during_the_read_is_delivered_at_once(tmp_path: Path) -> None:
    ob = Outbox(
        tmp_path / "outbox.sqlite3",
        budget_bytes=1 << 20,
        keep_delivered_s=60,
        commit_interval_s=0,
        consumers=("test",),
        metrics=Metrics(),
    )
    ob.open()
    writer = asyncio.create_task(ob.run())
    reading = threading.Event()
    original = ob.read_after

    def read_while_a_commit_lands(after: int, limit: int) -> list[StoredEvent]:
        rows = original(after, limit)
        if not reading.is_set():
            # The race, made certain: the read found nothing, and before it returns an event is
            # committed (appended by the test below while this thread waits).
            reading.set()
            deadline = time.monotonic() + 5
            while ob.committed_seq <= after and time.monotonic() < deadline:
                time.sleep(0.005)
        return rows

    ob.read_after = read_while_a_commit_lands  # type: ignore[method-assign]
    pusher = _Recorder(ob)
    pump = asyncio.create_task(pusher._pump(lambda: None))
    try:
        await asyncio.to_thread(reading.wait, 5)
        ob.append(source="s", severity=2, build=lambda s: b"{}")
        async with asyncio.timeout(5):  # not the pump's 30 s idle wait
            while pusher.got != [1]:
                await asyncio.sleep(0.01)
    finally:
        await cancel_and_wait(pump, writer)
        ob.close()
