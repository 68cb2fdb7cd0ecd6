"""The durable outbox: group commit, order, cursors, byte budget, pruning, recovery, and kill -9.

Why this file is long: the outbox's guarantees (order, durability, budget, cursors) are
checked against one shared set of fixtures and helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_core.errors import OutboxError
from gateway.metrics import Metrics
from gateway.outbox import Outbox, intake_since

ROOT = Path(__file__).resolve().parents[3]


def make(
    path: Path,
    *,
    consumers: tuple[str, ...] = ("feed",),
    budget: int = 1 << 30,
    keep_s: float = 86400.0,
    interval: float = 0.0,
    metrics: Metrics | None = None,
    overflow: list[int] | None = None,
) -> Outbox:
    ob = Outbox(
        path,
        budget_bytes=budget,
        keep_delivered_s=keep_s,
        commit_interval_s=interval,
        consumers=consumers,
        metrics=metrics or Metrics(),
        on_overflow=(overflow.append if overflow is not None else lambda _n: None),
    )
    ob.open()
    return ob


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite3"


@pytest.fixture
def outbox(db: Path) -> Iterator[Outbox]:
    ob = make(db)
    yield ob
    ob.close()


def body(seq: int, size: int = 0) -> bytes:
    b = json.dumps({"seq": seq}).encode()
    return b + b" " * max(0, size - len(b))


def add(ob: Outbox, n: int, *, severity: int = 2, size: int = 0, source: str = "src") -> list[int]:
    return [ob.append(source=source, severity=severity, build=lambda s: body(s, size)) for _ in range(n)]


def sample(m: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    v = m.registry.get_sample_value(name, labels or {})
    return 0.0 if v is None else v


# -- writing and reading ------------------------------------------------------------------------


def test_opens_in_wal_mode_with_full_sync(outbox: Outbox, db: Path) -> None:
    assert db.exists()
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is per connection: the writer's is what makes a returned commit durable.
    assert outbox._wconn is not None and outbox._wconn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_events_are_invisible_until_committed_then_read_in_order(outbox: Outbox) -> None:
    seqs = add(outbox, 5)
    assert seqs == [1, 2, 3, 4, 5]
    assert outbox.read_after(0, 100) == []
    assert outbox.committed_seq == 0
    await outbox.flush()
    assert outbox.committed_seq == 5
    got = outbox.read_after(0, 100)
    assert [e.seq for e in got] == seqs
    assert [json.loads(e.body)["seq"] for e in got] == seqs  # build() got the event's own sequence
    assert [e.seq for e in outbox.read_after(2, 2)] == [3, 4]
    assert outbox.read_after(5, 10) == []


async def test_flush_with_nothing_pending_returns(outbox: Outbox) -> None:
    await asyncio.wait_for(outbox.flush(), 2)


async def test_writer_task_group_commits_a_burst(db: Path) -> None:
    m = Metrics()
    ob = make(db, metrics=m, interval=0.02)
    writer = asyncio.create_task(ob.run())
    try:
        add(ob, 500)
        assert await ob.wait_committed(499, timeout=5)
        commits = sample(m, "gateway_outbox_commits_total")
        assert 1 <= commits <= 3, commits  # 500 events, a handful of fsyncs
        assert sample(m, "gateway_outbox_committed_events_total") == 500
        add(ob, 3)
        assert await ob.wait_committed(502, timeout=5)
        assert [e.seq for e in ob.read_after(500, 10)] == [501, 502, 503]
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        ob.close()


async def test_wait_committed_times_out_then_wakes(outbox: Outbox) -> None:
    t = time.monotonic()
    assert await outbox.wait_committed(0, timeout=0.05) is False
    assert time.monotonic() - t < 1
    waiter = asyncio.create_task(outbox.wait_committed(0, timeout=5))
    await asyncio.sleep(0.01)
    add(outbox, 1)
    await outbox.flush()
    assert await waiter is True


async def test_writer_cancelled_commits_what_was_accepted(db: Path) -> None:
    ob = make(db, interval=10)  # would wait 10 s to group: cancellation must not lose the group
    writer = asyncio.create_task(ob.run())
    add(ob, 7)
    await asyncio.sleep(0.01)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    ob.close()
    ob2 = make(db)
    assert [e.seq for e in ob2.read_after(0, 100)] == list(range(1, 8))
    ob2.close()


def test_stop_intake_refuses_new_events(outbox: Outbox) -> None:
    outbox.stop_intake()
    with pytest.raises(OutboxError):
        add(outbox, 1)


# -- cursors and delivery -------------------------------------------------------------------------


async def test_delivered_is_the_minimum_cursor_and_cursors_are_durable(db: Path) -> None:
    m = Metrics()
    ob = make(db, consumers=("webhook", "mqtt"), metrics=m)
    add(ob, 10)
    await ob.flush()
    assert ob.delivered_seq == 0
    ob.set_cursor("webhook", 8)
    ob.set_cursor("mqtt", 3)
    ob.set_cursor("mqtt", 2)  # never backwards
    assert (ob.cursor("webhook"), ob.cursor("mqtt"), ob.delivered_seq) == (8, 3, 3)
    await ob.flush()
    assert sample(m, "gateway_outbox_undelivered_events") == 7
    assert sample(m, "gateway_delivery_lag_events", {"consumer": "webhook"}) == 2
    ob.close()
    ob2 = make(db, consumers=("webhook", "mqtt", "new"))
    assert (ob2.cursor("webhook"), ob2.cursor("mqtt"), ob2.cursor("new")) == (8, 3, 0)
    assert ob2.delivered_seq == 0  # a new consumer has nothing yet
    assert ob2.committed_seq == 10
    ob2.close()


# -- byte budget --------------------------------------------------------------------------------


async def test_budget_drops_lowest_severity_oldest_first_and_reports_it(db: Path) -> None:
    m = Metrics()
    overflow: list[int] = []
    ob = make(db, budget=10_000, metrics=m, overflow=overflow)
    crit = add(ob, 8, severity=3, size=1000)
    info = add(ob, 8, severity=0, size=1000)
    await ob.flush()
    # 16,000 bytes against 10,000: freed down to 95 % (9,500) by dropping 7 info events, oldest first.
    kept = [e.seq for e in ob.read_after(0, 100)]
    assert kept == crit + info[-1:]
    assert overflow == [7] and ob.dropped_total == 7
    assert sample(m, "gateway_outbox_dropped_events_total") == 7
    assert sample(m, "gateway_outbox_undelivered_bytes") == 9000
    # Sequences stay; the gap is what was dropped.
    minor = add(ob, 2, severity=1, size=1000)
    await ob.flush()
    kept2 = [e.seq for e in ob.read_after(0, 100)]
    assert set(crit) <= set(kept2) and info[-1] not in kept2 and minor[-1] in kept2
    assert overflow == [7, 2]
    ob.close()


async def test_budget_never_drops_delivered_events(db: Path) -> None:
    ob = make(db, budget=5_000)
    first = add(ob, 5, severity=0, size=900)
    await ob.flush()
    ob.set_cursor("feed", first[-1])
    later = add(ob, 6, severity=2, size=900)  # 5,400 undelivered bytes
    await ob.flush()
    kept = [e.seq for e in ob.read_after(0, 100)]
    assert kept[:5] == first  # delivered, so not the budget's to drop
    assert kept[5:] == later[1:]
    ob.close()


def test_budget_is_recomputed_on_reopen(db: Path) -> None:
    async def fill() -> None:
        ob = make(db)
        add(ob, 10, size=1000)
        await ob.flush()
        ob.set_cursor("feed", 4)
        await ob.flush()
        ob.close()

    asyncio.run(fill())
    m = Metrics()
    ob = make(db, metrics=m)
    assert sample(m, "gateway_outbox_undelivered_bytes") == 6000
    assert sample(m, "gateway_outbox_undelivered_events") == 6
    ob.close()


# -- retention --------------------------------------------------------------------------------


async def test_prune_deletes_only_old_delivered_events_and_dead_incident_rows(db: Path) -> None:
    ob = make(db, keep_s=3600)
    add(ob, 6)
    ob.append(source="s", severity=2, build=body, incident=("live-1", True, '{"id": "live-1"}'))
    ob.save_incident("dead-1", False, '{"id": "dead-1"}')
    await ob.flush()
    ob.set_cursor("feed", 4)
    await ob.flush()
    assert ob.prune_delivered(now=time.time() + 1800) == 0  # delivered but still young
    assert ob.prune_delivered(now=time.time() + 7200) == 4
    assert [e.seq for e in ob.read_after(0, 100)] == [5, 6, 7]
    assert ob.live_incident_rows() == ['{"id": "live-1"}']
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert [r[0] for r in c.execute("SELECT id FROM incidents")] == ["live-1"]
    ob.close()


async def test_sequences_are_never_reused_after_everything_was_pruned(db: Path) -> None:
    ob = make(db, keep_s=0)
    add(ob, 3)
    await ob.flush()
    ob.set_cursor("feed", 3)
    await ob.flush()
    assert ob.prune_delivered(now=time.time() + 1) == 3
    ob.close()
    ob2 = make(db)
    assert ob2.committed_seq == 3
    assert add(ob2, 1) == [4]
    ob2.close()


# -- recovery -----------------------------------------------------------------------------------


async def test_incident_rows_commit_with_their_events_and_survive_reopen(db: Path) -> None:
    ob = make(db)
    ob.append(source="s", severity=2, build=body, incident=("a", True, '{"rev": 1}'))
    ob.append(source="s", severity=2, build=body, incident=("a", True, '{"rev": 2}'))
    ob.append(source="s", severity=2, build=body, incident=("b", True, '{"rev": 1}'))
    ob.save_incident("b", False, '{"rev": 2}')  # b became history
    ob.set_kv("webhook.etag", b"xyz")
    await ob.flush()
    ob.close()
    ob2 = make(db)
    assert ob2.live_incident_rows() == ['{"rev": 2}']
    assert ob2.get_kv("webhook.etag") == b"xyz"
    assert ob2.committed_seq == 3 and add(ob2, 1) == [4]
    ob2.close()


class SlowCommitConnection:
    """Wraps the writer's connection: COMMIT in a worker thread takes a while (a slow SD card)."""

    def __init__(self, conn: sqlite3.Connection, delay: float) -> None:
        self._conn, self._delay = conn, delay
        self.in_commit = threading.Event()

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and threading.current_thread() is not threading.main_thread():
            self.in_commit.set()
            time.sleep(self._delay)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> Any:
        return self._conn.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._conn.__exit__(*exc)


async def wait_for_event(ev: threading.Event, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not ev.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def test_writer_cancelled_while_a_commit_is_in_flight_loses_nothing(db: Path) -> None:
    ob = make(db)
    real = ob._wconn
    assert real is not None
    slow = SlowCommitConnection(real, 0.3)
    ob._wconn = slow  # type: ignore[assignment]
    writer = asyncio.create_task(ob.run())
    add(ob, 10)
    await wait_for_event(slow.in_commit)  # the first group is being committed in a worker thread
    add(ob, 10)  # accepted while that commit is in flight
    writer.cancel()  # shutdown (or a sibling task failing) cancels the writer now
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    ob._wconn = real
    ob.close()
    ob2 = make(db)
    assert [e.seq for e in ob2.read_after(0, 100)] == list(range(1, 21))
    ob2.close()


async def test_prune_while_a_commit_is_in_flight(db: Path) -> None:
    ob = make(db, keep_s=0)
    add(ob, 5)
    await ob.flush()
    ob.set_cursor("feed", 5)
    await ob.flush()
    real = ob._wconn
    assert real is not None
    slow = SlowCommitConnection(real, 0.3)
    ob._wconn = slow  # type: ignore[assignment]
    add(ob, 5)
    ob.append(source="s", severity=2, build=body, incident=("x", True, "{}"))
    commit = asyncio.create_task(ob.flush())
    await wait_for_event(slow.in_commit)
    # The gateway's tick prunes in a worker thread while the writer commits in another.
    pruned = await asyncio.to_thread(ob.prune_delivered, time.time() + 1)
    await commit  # the in-flight group must still commit cleanly
    ob._wconn = real
    assert pruned == 5
    assert [e.seq for e in ob.read_after(0, 100)] == list(range(6, 12))
    assert ob.live_incident_rows() == ["{}"]
    ob.close()


def test_committed_events_survive_sigkill(db: Path) -> None:
    """A child process commits N events (and keeps appending), then kills itself with SIGKILL."""
    n = 1200
    script = textwrap.dedent(
        """
        import asyncio, os, signal, sys
        from pathlib import Path
        from gateway.metrics import Metrics
        from gateway.outbox import Outbox, intake_since

        async def main():
            ob = Outbox(Path(sys.argv[1]), budget_bytes=1 << 30, keep_delivered_s=86400,
                        commit_interval_s=0.001, consumers=["feed"], metrics=Metrics())
            ob.open()
            writer = asyncio.create_task(ob.run())
            n = int(sys.argv[2])
            for i in range(n):
                ob.append(source="src", severity=i % 4, build=lambda seq: b'{"seq": %d}' % seq,
                          incident=("inc-%d" % (i % 7), True, '{"i": %d}' % i))
                if i % 100 == 0:
                    await asyncio.sleep(0)  # let the writer commit groups meanwhile
            await ob.flush()
            print(ob.committed_seq, flush=True)
            for i in range(500):  # a burst still in flight when the power goes
                ob.append(source="src", severity=0, build=lambda seq: b'{"seq": %d}' % seq)
            await asyncio.sleep(0.002)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(db), str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed = int(proc.stdout.strip().splitlines()[-1])
    assert committed == n
    ob = make(db)
    try:
        events = ob.read_after(0, 10_000)
        seqs = [e.seq for e in events]
        assert seqs[:n] == list(range(1, n + 1))  # every committed event, in order
        assert seqs == list(range(1, len(seqs) + 1))  # and nothing half-written after them
        assert all(json.loads(e.body)["seq"] == e.seq for e in events)
        assert ob.committed_seq == len(seqs) >= n
        rows = sorted(json.loads(r)["i"] for r in ob.live_incident_rows())
        assert rows == list(range(n - 7, n))  # each incident's last committed row
        assert add(ob, 1) == [len(seqs) + 1]
    finally:
        ob.close()


async def test_budget_drops_in_one_transaction_not_one_fsync_per_event(db: Path) -> None:
    ob = make(db, budget=50_000)
    add(ob, 500, severity=0, size=100)
    await ob.flush()
    assert ob._wconn is not None
    autocommitted: list[str] = []
    conn = ob._wconn
    conn.set_trace_callback(lambda sql: autocommitted.append(sql) if not conn.in_transaction else None)
    try:
        add(ob, 100, severity=0, size=100)  # 60,000 bytes: about 125 events must go
        await ob.flush()
    finally:
        conn.set_trace_callback(None)
    assert ob.dropped_total > 100
    # With synchronous=FULL every autocommitted statement is its own fsync: on an SD card, a
    # thousand dropped events one by one would stall the writer for many seconds.
    assert [s for s in autocommitted if s.startswith("DELETE")] == []
    ob.close()


async def test_oldest_undelivered_age(outbox: Outbox) -> None:
    assert outbox.oldest_undelivered_age() == 0.0
    add(outbox, 2)
    await outbox.flush()
    assert 0.0 <= outbox.oldest_undelivered_age() < 5
    with contextlib.closing(sqlite3.connect(outbox.path)) as c, c:
        c.execute("UPDATE events SET created = created - 3600 WHERE seq = 1")
    assert 3599 < outbox.oldest_undelivered_age() < 3700
    outbox.set_cursor("feed", 1)
    assert outbox.oldest_undelivered_age() < 5  # only seq 2 is still owed
    outbox.set_cursor("feed", 2)
    assert outbox.oldest_undelivered_age() == 0.0


def backdate(ob: Outbox, ages: dict[int, float]) -> None:
    with contextlib.closing(sqlite3.connect(ob.path)) as c, c:
        now = time.time()
        for seq, age in ages.items():
            c.execute("UPDATE events SET created = ? WHERE seq = ?", (now - age, seq))


async def test_capacity_is_free_budget_over_the_last_days_intake(db: Path) -> None:
    metrics = Metrics()
    ob = make(db, budget=1_000_000, metrics=metrics)
    try:
        idle = ob.capacity()
        assert idle.covers_hours is None and idle.intake_bytes_per_hour == 0.0
        assert sample(metrics, "gateway_outbox_capacity_hours") == float("inf")
        add(ob, 6, size=1000)
        await ob.flush()
        # Two events are older than the day and do not count; four came in over the day.
        backdate(ob, {1: 30 * 3600, 2: 25 * 3600, 3: 10 * 3600, 4: 5 * 3600, 5: 3600, 6: 60})
        ob.set_cursor("feed", 2)
        await ob.flush()
        cap = ob.capacity()
        assert cap.undelivered_events == 4 and cap.undelivered_bytes == 4000
        assert cap.intake_bytes_per_hour == pytest.approx(4000 / 24, rel=1e-3)
        assert cap.covers_hours == pytest.approx((1_000_000 - 4000) / (4000 / 24), rel=1e-3)
        assert sample(metrics, "gateway_outbox_capacity_hours") == pytest.approx(cap.covers_hours)
        # A box with two hours of history: the rate is over those two hours, not over a day.
        backdate(ob, dict.fromkeys(range(1, 7), 60.0) | {1: 7200.0})
        assert ob.capacity().intake_bytes_per_hour == pytest.approx(6000 / 2, rel=1e-3)
        # A history shorter than ten minutes is spread over ten minutes, not taken as the rate.
        backdate(ob, dict.fromkeys(range(1, 7), 60.0))
        assert ob.capacity().intake_bytes_per_hour == pytest.approx(6000 * 6, rel=1e-3)
    finally:
        ob.close()


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_intake_since_bisects_to_the_first_event_of_the_window(tmp_path: Path, n: int) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "o.sqlite3")) as c:
        c.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, created REAL, body BLOB)")
        # Gaps in seq, as pruning and budget drops leave them.
        c.executemany("INSERT INTO events VALUES (?, ?, ?)", [(3 * i + 5, 100.0 + i, b"x" * (i + 1)) for i in range(n)])
        for start in (0.0, 100.0, 100.5, 100.0 + n / 2, 100.0 + n - 1, 1000.0):
            want = sum(i + 1 for i in range(n) if 100.0 + i >= start)
            assert intake_since(c, start) == (want, 100.0)
        assert intake_since(c, -1.0)[0] == n * (n + 1) // 2
        c.execute("DELETE FROM events")
        assert intake_since(c, 0.0) == (0, None)


async def test_flush_waits_for_the_commit_the_writer_has_in_flight(tmp_path: Path) -> None:
    from gateway.metrics import Metrics
    from gateway.outbox import Outbox

    ob = Outbox(
        tmp_path / "o.sqlite3",
        budget_bytes=1 << 30,
        keep_delivered_s=1,
        commit_interval_s=0,
        consumers=["feed"],
        metrics=Metrics(),
    )
    ob.open()
    original = ob._commit_batch
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(*args):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)
        return original(*args)

    ob._commit_batch = slow  # type: ignore[method-assign]
    writer = asyncio.create_task(ob.run())
    ob.append(source="s", severity=1, build=lambda seq: b"{}")
    await started.wait()  # the writer holds the batch; nothing is 'pending' any more
    await ob.flush()
    assert ob.committed_seq == 1
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    ob.close()


# -- the writer thread --------------------------------------------------------------------------


def writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "outbox-writer"}


async def stop(writer: asyncio.Task[None]) -> None:
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer


async def test_a_commit_starts_while_the_loop_is_busy_in_one_long_callback(db: Path) -> None:
    ob = make(db)
    writer = asyncio.create_task(ob.run())
    waiter = asyncio.create_task(ob.wait_committed(0, timeout=5))
    await asyncio.sleep(0)  # run() starts the writer thread; the waiter waits
    committed = threading.Event()
    original = ob._commit_batch

    def spy(*args: Any) -> int:
        dropped = original(*args)
        if ob.committed_seq == 3:  # in one group or more, however the writer took them
            committed.set()
        return dropped

    ob._commit_batch = spy  # type: ignore[method-assign,assignment]
    # As gmqtt handling a whole socket read: events are appended and the callback goes on working.
    # Blocking here blocks the loop, so only a writer that does not need the loop can commit.
    add(ob, 3)
    assert committed.wait(timeout=5)
    assert ob.committed_seq == 3
    assert [e.seq for e in ob.read_after(0, 10)] == [1, 2, 3]
    assert await waiter is True  # a long-poll waiter hears of it once the loop is free
    await stop(writer)
    ob.close()


async def test_events_appended_during_a_commit_form_the_next_group(db: Path) -> None:
    ob = make(db)
    original = ob._commit_batch
    groups: list[list[int]] = []
    in_commit, release = threading.Event(), threading.Event()

    def gated(events: Any, *rest: Any) -> int:
        groups.append([e.seq for e in events])
        in_commit.set()
        assert release.wait(timeout=5)
        return original(events, *rest)

    ob._commit_batch = gated  # type: ignore[method-assign,assignment]
    writer = asyncio.create_task(ob.run())
    add(ob, 1)
    assert await asyncio.to_thread(in_commit.wait, 5)
    add(ob, 50)  # the first group's commit is in flight
    release.set()
    await ob.flush()
    assert groups == [[1], list(range(2, 52))]
    assert [e.seq for e in ob.read_after(0, 100)] == list(range(1, 52))
    await stop(writer)
    ob.close()


async def test_a_failed_commit_raises_from_run_and_flush(db: Path) -> None:
    others = writer_threads()
    ob = make(db)
    writer = asyncio.create_task(ob.run())
    add(ob, 2)
    await ob.flush()
    with contextlib.closing(sqlite3.connect(db)) as c, c:
        c.execute("DROP TABLE events")  # the next commit's INSERT fails
    add(ob, 1)
    with pytest.raises(OutboxError, match="accepted but only 2 committed"):
        await asyncio.wait_for(ob.flush(), 5)
    with pytest.raises(OutboxError, match="no such table"):
        await asyncio.wait_for(writer, 5)
    with pytest.raises(OutboxError):
        await ob.flush()  # nothing new pending, but the failed group is still owed
    assert writer_threads() == others
    ob.close()


async def test_shutdown_leaves_no_writer_thread_and_nothing_uncommitted(db: Path) -> None:
    others = writer_threads()
    ob = make(db)
    writer = asyncio.create_task(ob.run())
    add(ob, 5)
    await ob.flush()
    ob.stop_intake()
    ob.save_incident("x", False, '{"late": true}')  # accepted after the flush: still owed
    ob.set_cursor("feed", 5)
    assert len(writer_threads() - others) == 1
    await stop(writer)
    assert writer_threads() == others
    ob.close()
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT row FROM incidents").fetchall() == [('{"late": true}',)]
        assert c.execute("SELECT seq FROM cursors WHERE name = 'feed'").fetchone() == (5,)
    # flush() alone (no run()) starts the writer too; close() stops it.
    ob2 = make(db)
    add(ob2, 1)
    await ob2.flush()
    assert len(writer_threads() - others) == 1
    ob2.close()
    assert writer_threads() == others


async def test_close_waits_for_a_read_in_flight(outbox: Outbox) -> None:
    add(outbox, 3)
    await outbox.flush()
    assert outbox._rconn is not None
    in_read = threading.Event()

    def stall() -> int:  # SQLite calls this during the query, from the reading thread
        if not in_read.is_set():
            in_read.set()
            time.sleep(0.1)
        return 0

    outbox._rconn.set_progress_handler(stall, 1)
    got: list[int] = []
    # As the tick's oldest_undelivered_age or a feed request, left running when its task is cancelled.
    reader = threading.Thread(target=lambda: got.extend(e.seq for e in outbox.read_after(0, 10)))
    reader.start()
    assert in_read.wait(timeout=5)
    outbox.close()  # without waiting for the read, this crashed the process
    reader.join()
    assert got == [1, 2, 3]
