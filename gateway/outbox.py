"""The durable outbox: every incident event is committed here before anyone else sees it.

SQLite in WAL mode with ``synchronous=FULL``: in WAL mode FULL syncs the log on every commit, so a
commit that returned survives kill -9 and power loss (NORMAL would only sync at checkpoints and
can roll back the last commits after a power cut). The cost of that fsync is paid once per group:
events appended while a commit is in flight are written together in the next transaction.

Readers (the pull feed, the pushers) read committed rows through their own connection; WAL lets
them read while the writer writes. Each push channel keeps a durable cursor; an event is
*delivered* once every consumer's cursor has passed it. Undelivered events are kept up to a byte
budget; beyond it the oldest events of the lowest severity go first, and the loss is counted and
reported through ``on_overflow``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import OutboxError
from gateway.metrics import Metrics

__all__ = ["Outbox", "StoredEvent"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, live INTEGER NOT NULL, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    source: str
    body: bytes


@dataclass(slots=True)
class _Pending:
    seq: int
    source: str
    severity: int
    created: float
    body: bytes


class Outbox:
    """Append events, commit them in groups, and serve them to consumers by sequence."""

    def __init__(
        self,
        path: Path,
        *,
        budget_bytes: int,
        keep_delivered_s: float,
        commit_interval_s: float,
        consumers: Sequence[str],
        metrics: Metrics,
        on_overflow: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.path = path
        self._budget = budget_bytes
        self._keep_delivered_s = keep_delivered_s
        self._interval = commit_interval_s
        self._consumers = tuple(consumers)
        self._metrics = metrics
        self._on_overflow = on_overflow
        self._pending: list[_Pending] = []
        self._pending_rows: dict[str, tuple[int, str]] = {}
        self._pending_cursors: dict[str, int] = {}
        self._pending_kv: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self._committed_cond = asyncio.Condition()
        self._next_seq = 1
        self.committed_seq = 0
        self._cursors: dict[str, int] = {}
        self._undelivered_bytes = 0
        self._dropped_total = 0
        self._closing = False
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        # One commit at a time (the writer task and flush() both commit); one reader at a time
        # on the shared read connection (feed requests run in worker threads).
        self._commit_lock = asyncio.Lock()
        self._read_lock = threading.Lock()
        # The writer connection is used from worker threads (commits, prune) and from the loop
        # (run()'s shutdown commit, close). A cancelled to_thread commit keeps running in its
        # thread, so the asyncio lock alone cannot keep two transactions apart on one connection.
        self._write_lock = threading.Lock()

    # -- life ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open (creating if needed) the database and recover sequence and cursors. Blocking."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            w = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            w.execute("PRAGMA journal_mode=WAL")
            w.execute("PRAGMA synchronous=FULL")
            w.executescript(_SCHEMA)
            r = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._wconn, self._rconn = w, r
        self.committed_seq = w.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        kv_seq = self.get_kv("last_seq")
        if kv_seq is not None:
            # Sequences are never reused, even when the newest events were pruned.
            self.committed_seq = max(self.committed_seq, int(kv_seq))
        self._next_seq = self.committed_seq + 1
        stored = dict(w.execute("SELECT name, seq FROM cursors").fetchall())
        self._cursors = {name: int(stored.get(name, 0)) for name in self._consumers}
        self._undelivered_bytes = w.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE seq > ?", (self.delivered_seq,)
        ).fetchone()[0]
        self._update_gauges()

    def close(self) -> None:
        with self._write_lock:  # never under an in-flight commit
            for conn in (self._rconn, self._wconn):
                if conn is not None:
                    conn.close()
            self._wconn = self._rconn = None

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        *,
        source: str,
        severity: int,
        build: Callable[[int], bytes],
        incident: tuple[str, bool, str] | None = None,
    ) -> int:
        """Queue one event for the next group commit and return its sequence number.

        ``build(seq)`` makes the event body (the envelope carries its own sequence). ``incident``
        is (id, live, row JSON): the incident's state is committed in the same transaction, so the
        state and the events that announce it never disagree after a crash.
        """
        if self._closing:
            raise OutboxError("outbox is closing; no new events are taken")
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append(_Pending(seq, source, severity, time.time(), build(seq)))
        if incident is not None:
            self._pending_rows[incident[0]] = (1 if incident[1] else 0, incident[2])
        self._wake.set()
        return seq

    def save_incident(self, incident_id: str, live: bool, row: str) -> None:
        """Persist an incident's state without an event (a change nobody needs to hear of yet)."""
        self._pending_rows[incident_id] = (1 if live else 0, row)
        self._wake.set()

    def set_cursor(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has everything up to ``seq`` (durable at the next commit)."""
        if seq <= self._cursors.get(name, 0):
            return
        self._cursors[name] = seq
        self._pending_cursors[name] = seq
        self._wake.set()

    def set_kv(self, key: str, value: bytes) -> None:
        self._pending_kv[key] = value
        self._wake.set()

    def get_kv(self, key: str) -> bytes | None:
        assert self._wconn is not None
        row = self._wconn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @property
    def consumers(self) -> tuple[str, ...]:
        """The consumers whose cursors decide what counts as delivered."""
        return self._consumers

    def cursor(self, name: str) -> int:
        return self._cursors.get(name, 0)

    @property
    def delivered_seq(self) -> int:
        """Highest sequence every consumer has."""
        return min(self._cursors.values()) if self._cursors else 0

    @property
    def dropped_total(self) -> int:
        return self._dropped_total

    def live_incident_rows(self) -> list[str]:
        assert self._wconn is not None
        return [r[0] for r in self._wconn.execute("SELECT row FROM incidents WHERE live = 1")]

    async def run(self) -> None:
        """The writer: commit whatever is pending, in groups, until cancelled (then flush)."""
        try:
            while True:
                await self._wake.wait()
                if self._interval > 0:
                    # Let a burst gather so it shares one fsync.
                    await asyncio.sleep(self._interval)
                await self._commit_pending()
        finally:
            if self._has_pending() and not self._commit_lock.locked():
                # Shutdown: commit what was accepted before the task ends.
                self._commit_batch(*self._take_pending())

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        target = self._next_seq - 1
        # _commit_pending takes the commit lock, so this also waits out a commit the writer task
        # has in flight (its batch is no longer 'pending' but not yet committed either).
        await self._commit_pending()
        while self._has_pending():
            await self._commit_pending()
        if self.committed_seq < target:
            # Only a failed commit leaves events behind with nothing pending; say so, don't spin.
            raise OutboxError(f"events up to {target} were accepted but only {self.committed_seq} committed")

    def stop_intake(self) -> None:
        self._closing = True

    def _has_pending(self) -> bool:
        return bool(self._pending or self._pending_rows or self._pending_cursors or self._pending_kv)

    def _take_pending(
        self,
    ) -> tuple[list[_Pending], dict[str, tuple[int, str]], dict[str, int], dict[str, bytes]]:
        batch = (self._pending, self._pending_rows, self._pending_cursors, self._pending_kv)
        self._pending, self._pending_rows, self._pending_cursors, self._pending_kv = [], {}, {}, {}
        self._wake.clear()
        return batch

    async def _commit_pending(self) -> None:
        async with self._commit_lock:
            if not self._has_pending():
                self._wake.clear()
                return
            batch = self._take_pending()
            dropped = await asyncio.to_thread(self._commit_batch, *batch)
        async with self._committed_cond:
            self._committed_cond.notify_all()
        if dropped:
            self._on_overflow(dropped)

    def _commit_batch(
        self,
        events: list[_Pending],
        rows: dict[str, tuple[int, str]],
        cursors: dict[str, int],
        kv: dict[str, bytes],
    ) -> int:
        """Commit one group; returns how many undelivered events the budget forced out."""
        with self._write_lock:
            return self._commit_batch_locked(events, rows, cursors, kv)

    def _commit_batch_locked(
        self,
        events: list[_Pending],
        rows: dict[str, tuple[int, str]],
        cursors: dict[str, int],
        kv: dict[str, bytes],
    ) -> int:
        conn = self._wconn
        assert conn is not None
        if events:
            kv = {**kv, "last_seq": str(events[-1].seq).encode()}
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO events(seq, source, severity, created, body) VALUES (?, ?, ?, ?, ?)",
                [(e.seq, e.source, e.severity, e.created, e.body) for e in events],
            )
            if rows:
                conn.executemany(
                    "INSERT INTO incidents(id, live, row) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET live = excluded.live, row = excluded.row",
                    [(k, live, row) for k, (live, row) in rows.items()],
                )
            if cursors:
                conn.executemany(
                    "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                    list(cursors.items()),
                )
            if kv:
                conn.executemany(
                    "INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", list(kv.items())
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            raise OutboxError(f"commit to {self.path} failed: {exc}") from exc
        if events:
            self.committed_seq = max(self.committed_seq, events[-1].seq)
            self._undelivered_bytes += sum(len(e.body) for e in events)
            self._metrics.outbox_commits.inc()
            self._metrics.outbox_committed.inc(len(events))
            self._metrics.commit_batch.observe(len(events))
        if cursors:
            self._recount_undelivered()
        dropped = self._enforce_budget() if self._undelivered_bytes > self._budget else 0
        self._update_gauges()
        return dropped

    # -- keeping within bounds --------------------------------------------------------------

    def _recount_undelivered(self) -> None:
        assert self._wconn is not None
        self._undelivered_bytes = self._wconn.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE seq > ?", (self.delivered_seq,)
        ).fetchone()[0]

    def _enforce_budget(self) -> int:
        conn = self._wconn
        assert conn is not None
        dropped = 0
        # Free a little more than the excess so a full outbox does not prune on every commit.
        target = int(self._budget * 0.95)
        while self._undelivered_bytes > target:
            rows = conn.execute(
                "SELECT seq, LENGTH(body) FROM events WHERE seq > ? ORDER BY severity ASC, seq ASC LIMIT 256",
                (self.delivered_seq,),
            ).fetchall()
            if not rows:
                break
            victims: list[tuple[int]] = []
            for seq, size in rows:
                if self._undelivered_bytes <= target:
                    break
                victims.append((seq,))
                self._undelivered_bytes -= size
            with conn:
                conn.execute("BEGIN IMMEDIATE")  # one transaction (one fsync), not one per event
                conn.executemany("DELETE FROM events WHERE seq = ?", victims)
            dropped += len(victims)
        if dropped:
            self._dropped_total += dropped
            self._metrics.outbox_dropped.inc(dropped)
            log.warning("outbox budget full: dropped %d undelivered events (lowest severity, oldest first)", dropped)
        return dropped

    def prune_delivered(self, now: float | None = None) -> int:
        """Delete delivered events older than the retention time. Blocking; returns rows deleted."""
        conn = self._wconn
        assert conn is not None
        cutoff = (time.time() if now is None else now) - self._keep_delivered_s
        with self._write_lock, conn:
            cur = conn.execute("DELETE FROM events WHERE seq <= ? AND created < ?", (self.delivered_seq, cutoff))
            conn.execute("DELETE FROM incidents WHERE live = 0")
        return cur.rowcount

    def _update_gauges(self) -> None:
        self._metrics.outbox_depth.set(self.committed_seq - self.delivered_seq)
        self._metrics.outbox_bytes.set(self._undelivered_bytes)
        for name, seq in self._cursors.items():
            self._metrics.delivery_lag.labels(name).set(self.committed_seq - seq)

    def oldest_undelivered_age(self) -> float:
        assert self._rconn is not None
        with self._read_lock:
            row = self._rconn.execute("SELECT MIN(created) FROM events WHERE seq > ?", (self.delivered_seq,)).fetchone()
        return 0.0 if row[0] is None else max(0.0, time.time() - row[0])

    # -- reading ---------------------------------------------------------------------------

    def read_after(self, after: int, limit: int) -> list[StoredEvent]:
        """Committed events with seq > after, in order. Blocking (call via to_thread)."""
        assert self._rconn is not None
        with self._read_lock:
            rows = self._rconn.execute(
                "SELECT seq, source, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after, self.committed_seq, limit),
            ).fetchall()
        return [StoredEvent(seq, src, bytes(body)) for seq, src, body in rows]

    async def wait_committed(self, after: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an event with seq > after to be committed."""
        if self.committed_seq > after:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._committed_cond:
                    await self._committed_cond.wait_for(lambda: self.committed_seq > after)
        except TimeoutError:
            return False
        return True
