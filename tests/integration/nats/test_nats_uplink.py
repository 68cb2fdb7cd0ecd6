"""The NATS uplink against a real three-node JetStream cluster: acked, de-duplicated, in order,
through the loss of the stream's leader, and exactly once after a restart past the dedup window."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from bench._nats import NatsCluster
from edge_config.nats import NatsUplink
from edge_core.backoff import Backoff
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.supervisor import Supervisor
from gateway.upstream_nats import SEQ_HEADER, NatsPusher
from tests.conftest import cancel_and_wait
from tests.integration.nats.conftest import STREAM

pytestmark = pytest.mark.network


def _outbox(path: Path) -> Outbox:
    ob = Outbox(
        path,
        budget_bytes=1 << 30,
        keep_delivered_s=86400,
        commit_interval_s=0,
        consumers=(NatsPusher.consumer,),
        metrics=Metrics(),
    )
    ob.open()
    return ob


def _event(seq: int) -> bytes:
    category = ("intrusion", "threshold-breach")[seq % 2]
    return json.dumps({"id": f"inc-{seq}.1", "category": category, "sequence": f"{seq:020d}"}).encode()


def _add(ob: Outbox, n: int) -> None:
    for _ in range(n):
        ob.append(source="urn:t:box-1/dev", severity=2, build=_event)


def _pusher(ob: Outbox, cluster: NatsCluster, **extra: object) -> NatsPusher:
    cfg = NatsUplink.model_validate({"servers": cluster.urls, "township": "panlian", "heartbeat_s": 1, **extra})
    return NatsPusher(ob, Metrics(), cfg, township="x", box_id="box-1", password=None, nkey_seed=None)


async def _stored(
    cluster: NatsCluster, expected: int, subjects: str = "township.panlian.box-1.>", stream: str = STREAM
) -> list[tuple[int, str]]:
    """(Edge-Seq, Nats-Msg-Id) of every message the stream holds for the box, in stream order.

    Read until ``expected`` arrived and a second passed with nothing more: an ephemeral consumer
    placed on a replica that is still catching up after a restart can report nothing pending
    before it has everything.
    """
    nc = await nats.connect(servers=cluster.urls)
    try:
        js = nc.jetstream()
        for attempt in range(20):  # a node just restarted may not answer the first consumer request
            try:
                sub = await js.pull_subscribe(subjects, stream=stream)
                break
            except TimeoutError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        out: list[tuple[int, str]] = []
        quiet = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (len(out) >= expected and quiet >= 2):
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except TimeoutError:  # nats-py raises its own and, at times, asyncio's
                quiet += 1
                continue
            quiet = 0
            for m in msgs:
                h = m.headers or {}
                out.append((int(h[SEQ_HEADER]), h["Nats-Msg-Id"]))
                await m.ack()
        return out
    finally:
        await nc.close()


async def _leader(cluster: NatsCluster) -> str:
    nc = await nats.connect(servers=[n.url for n in cluster.nodes if n.running])
    try:
        for _ in range(100):
            with contextlib.suppress(nats.errors.Error):
                info = await nats.js.JetStreamContext(nc).stream_info(STREAM)
                if info.cluster is not None and info.cluster.leader:
                    return info.cluster.leader
            await asyncio.sleep(0.1)
        raise AssertionError("the stream has no leader")
    finally:
        await nc.close()


async def _until(cond: object, timeout: float, what: str) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_every_event_once_in_order_through_a_leader_kill(stream: NatsCluster, tmp_path: Path) -> None:
    ob = _outbox(tmp_path / "outbox.sqlite3")
    writer = asyncio.create_task(ob.run())
    pusher = _pusher(ob, stream)
    sup = Supervisor(pusher.name, pusher.run, Metrics(), backoff=Backoff(0.1, 1.0))
    task = asyncio.create_task(sup.run())
    try:
        _add(ob, 100)
        await _until(lambda: ob.cursor("nats") >= 100, 20, "the first 100 events to be acked")
        leader = stream.node(await _leader(stream))
        stream.kill(leader)
        # Events keep coming while the cluster elects a new leader and the box may be reconnecting.
        for _ in range(10):
            _add(ob, 20)
            await asyncio.sleep(0.1)
        await _until(lambda: ob.cursor("nats") >= 300, 25, "every event to be acked after the leader died")
        stream.start(leader)
        _add(ob, 50)
        await _until(lambda: ob.cursor("nats") >= 350, 25, "the events after the restart")
    finally:
        await cancel_and_wait(task, writer)
        ob.close()
    stored = await _stored(stream, 350)
    assert [s for s, _ in stored] == list(range(1, 351)), "lost, duplicated or out of order"
    assert [i for _, i in stored] == [f"inc-{s}.1" for s in range(1, 351)]


async def test_a_restart_after_the_dedup_window_sends_nothing_twice(stream: NatsCluster, tmp_path: Path) -> None:
    # A stream with a one-second de-duplication window, so that waiting past it is quick.
    nc = await nats.connect(servers=stream.urls)
    js = nc.jetstream(timeout=30)
    await js.add_stream(StreamConfig(name="SHORT", subjects=["short.>"], num_replicas=3, duplicate_window=1.0))
    await nc.close()
    db = tmp_path / "outbox.sqlite3"

    async def deliver(n: int) -> None:
        ob = _outbox(db)
        writer = asyncio.create_task(ob.run())
        pusher = _pusher(ob, stream, stream="SHORT", subject_prefix="short", presence_bucket=None)
        task = asyncio.create_task(Supervisor(pusher.name, pusher.run, Metrics()).run())
        try:
            _add(ob, n)
            await _until(lambda: ob.cursor("nats") >= ob.committed_seq, 30, "delivery")
            await ob.flush()
        finally:
            task.cancel()
            # Bounded: an uplink that does not stop when cancelled would hang a daemon's shutdown.
            async with asyncio.timeout(15):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            ob.close()

    await deliver(10)
    # What a SIGKILL between the stream's ack and the cursor's commit leaves behind.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cursors SET seq = 4 WHERE name = 'nats'")
    await asyncio.sleep(1.5)  # past the window: the stream would take the copies now
    await deliver(5)
    stored = await _stored(stream, 15, "short.panlian.box-1.>", "SHORT")
    assert [s for s, _ in stored] == list(range(1, 16))


async def test_presence_says_online_then_offline(stream: NatsCluster, tmp_path: Path) -> None:
    ob = _outbox(tmp_path / "outbox.sqlite3")
    writer = asyncio.create_task(ob.run())
    pusher = _pusher(ob, stream)
    task = asyncio.create_task(Supervisor(pusher.name, pusher.run, Metrics()).run())
    nc = await nats.connect(servers=stream.urls)
    try:
        kv = await nc.jetstream().key_value("presence")

        async def state() -> str | None:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                entry = await kv.get("panlian.box-1")
                return str(json.loads(entry.value or b"{}")["state"])
            return None

        deadline = time.monotonic() + 20
        while await state() != "online":
            assert time.monotonic() < deadline, "no online record"
            await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await state() == "offline"
    finally:
        await nc.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        ob.close()
