"""The durable outbox: every incident event is committed here before anyone else sees it.

SQLite in WAL mode with ``synchronous=FULL``: in WAL mode FULL syncs the log on every commit, so a
commit that returned survives kill -9 and power loss (NORMAL would only sync at checkpoints and
can roll back the last commits after a power cut). The cost of that fsync is paid once per group:
events appended while a commit is in flight are written together in the next transaction.

Commits run in a writer thread of their own, woken by ``append``: the event loop can spend
milliseconds in one callback (a socket read of hundreds of MQTT messages), and a commit that
waited for the loop's next turn would wait that long before it even started. What a commit means
to the loop (waking long-poll waiters, reporting an overflow, a failure) is handed back to it.

Readers (the pull feed, the pushers) read committed rows through their own connection; WAL lets
them read while the writer writes. Each push channel keeps a durable cursor; an event is
*delivered* once every consumer's cursor has passed it. Undelivered events are kept up to a byte
budget; beyond it the oldest events of the lowest severity go first, and the loss is counted and
reported through ``on_overflow``. A box with no push channel has one consumer, :data:`FEED`: the
platform's own position in the pull feed (:meth:`Outbox.pull`).

Why this file is long: the writer thread, the group commit, the byte budget and the readers share
one connection discipline and one set of counters; split up, each part would reach into the
others' private state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_core.errors import OutboxError
from gateway.metrics import Metrics

__all__ = [
    "CAPACITY_WINDOW_S",
    "FEED",
    "FeedAheadError",
    "Outbox",
    "OutboxCapacity",
    "StorageFullError",
    "StoredEvent",
    "covers_hours",
    "intake_since",
    "skip_event",
]

FEED = "feed"
"""The consumer that stands for the platform pulling the feed, on a box with no push channel."""


class FeedAheadError(OutboxError):
    """A feed read asked for events after a sequence this box never committed: its outbox started
    again (a new disk, a wiped state directory), and waiting for after+1 would silently skip every
    event until then."""

    def __init__(self, after: int, committed: int) -> None:
        super().__init__(
            f"after={after} is past the last event this box committed ({committed}): its outbox was reset; "
            "read again from after=0"
        )
        self.after = after
        self.committed = committed


class StorageFullError(OutboxError):
    """The state disk is full: this event was refused (only events of at least
    :data:`KEEP_WHEN_FULL` severity are held in memory until space returns)."""


KEEP_WHEN_FULL = 2
"""Severity (major) from which events are still taken, in memory, while the state disk is full."""
_MAX_HELD_WHEN_FULL = 10_000
_FULL_RETRY_S = 1.0


def _disk_trouble(exc: BaseException | None) -> bool:
    """A commit that failed for lack of space (or a failing disk): worth retrying, not dying for."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR) or "disk is full" in str(exc)
    return isinstance(exc, OSError)


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


@dataclass(frozen=True, slots=True)
class OutboxCapacity:
    """How long an uplink outage the outbox can hold, at the rate events have been coming in.

    ``covers_hours`` is the free budget divided by the byte rate of the last ``window_s`` (or of the
    history kept, if shorter, but never less than ten minutes); None when nothing came in over
    that time (any outage fits).
    """

    budget_bytes: int
    undelivered_bytes: int
    undelivered_events: int
    oldest_undelivered_age_s: float
    dropped_total: int
    window_s: float
    intake_bytes_per_hour: float
    covers_hours: float | None


# The rate is taken over a day so that a quiet night and a busy afternoon average out; a history
# shorter than this floor would make one burst look like the daily rate.
CAPACITY_WINDOW_S = 86400.0
_MIN_SPAN_S = 600.0


def intake_since(conn: sqlite3.Connection, start: float) -> tuple[int, float | None]:
    """Bytes of the events created at or after ``start``, and when the kept history begins.

    ``created`` follows ``seq`` (both taken at append), so the first event of the window is found
    by bisecting the primary key: no scan of the older rows and no index on ``created`` to pay for
    at every insert. The history's start (the oldest event kept, None if there is none) tells a
    box that has run for an hour from one that has run for weeks.
    """
    lo, hi = conn.execute("SELECT COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
    oldest = conn.execute("SELECT created FROM events WHERE seq = ?", (lo,)).fetchone()
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute("SELECT seq, created FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)).fetchone()
        if row[1] >= start:
            hi = mid
        else:
            lo = row[0] + 1
    total = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE seq >= ?", (lo,)).fetchone()[0]
    return int(total), None if oldest is None else float(oldest[0])


def covers_hours(
    free_bytes: int, intake_bytes: int, history_start: float | None, now: float, window_s: float
) -> tuple[float, float | None]:
    """(intake bytes per hour, hours of outage the free budget holds at that rate; None if idle)."""
    if history_start is None or intake_bytes == 0:
        return 0.0, None
    span = max(_MIN_SPAN_S, min(window_s, now - history_start))
    per_hour = intake_bytes / span * 3600.0
    return per_hour, max(0, free_bytes) / per_hour


# Rows per INSERT statement: 5 columns x 400 stays far below SQLite's 32,766 parameters.
_ROWS_PER_INSERT = 400


def _insert_rows(conn: sqlite3.Connection, table: str, tail: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert rows with multi-row INSERT statements rather than executemany.

    The sqlite3 module gives up the GIL around every statement step; executemany steps once per
    row, and on a busy box each step then waits for the event loop's thread to hand the GIL back
    (up to the 5 ms switch interval). One statement per few hundred rows pays that once.
    """
    width = len(rows[0]) if rows else 0
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * len(chunk))
        conn.execute(f"INSERT INTO {table} VALUES {values}{tail}", [v for row in chunk for v in row])


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
        on_storage: Callable[[str | None], None] = lambda _why: None,
        reserve_bytes: int = 1 << 20,
    ) -> None:
        self.path = path
        self._budget = budget_bytes
        self._keep_delivered_s = keep_delivered_s
        self._interval = commit_interval_s
        self._consumers = tuple(consumers)
        self._metrics = metrics
        self._on_overflow = on_overflow
        self._on_storage = on_storage
        # Why the last commit could not be stored (disk full), until one succeeds; the writer
        # keeps the group and retries, so nothing accepted is lost while the process lives.
        self.storage_full: str | None = None
        self.refused_total = 0
        self._disk_failures = 0
        # A file of zeros kept beside the database: released when the disk fills, it gives the
        # room to delete delivered events and commit what is held; space has returned once it can
        # be written again. Both belong to the writer thread.
        self._reserve = path.with_name(path.name + ".reserve")
        self._reserve_bytes = reserve_bytes
        self._degraded = False
        self._next_recovery_try = 0.0
        self._pending: list[_Pending] = []
        self._pending_rows: dict[str, tuple[int, str]] = {}
        self._pending_cursors: dict[str, int] = {}
        self._pending_kv: dict[str, bytes] = {}
        # Guards the pending group against the writer thread taking it; the writer waits on it for
        # work. Counts of groups taken and committed let flush() know which commit it waits for.
        self._work = threading.Condition()
        self._taken = 0
        self._done = 0
        self._urgent = False
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._failure: Exception | None = None
        self._failed = asyncio.Event()
        # Set, then replaced, on the loop after each commit: whoever waits for a commit awaits it.
        self._commit_seen = asyncio.Event()
        self._next_seq = 1
        self.committed_seq = 0
        self._cursors: dict[str, int] = {}
        self._undelivered_bytes = 0
        self._dropped_total = 0
        self._closing = False
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        # One reader at a time on the shared read connection (feed requests run in worker threads).
        self._read_lock = threading.Lock()
        # The writer connection is used by the writer thread (commits), by worker threads (prune)
        # and by close(): one transaction at a time on one connection.
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
        if not self._write_reserve():
            log.warning("outbox: no room for the %d-byte reserve in %s", self._reserve_bytes, self.path.parent)

    def close(self) -> None:
        self._stop_writer()
        # A worker thread may still be in a prune or a read whose task was cancelled (the tick's,
        # a feed request's): closing the connection under it crashes the process (SIGSEGV).
        with self._write_lock, self._read_lock:
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
        if self.storage_full is not None and (severity < KEEP_WHEN_FULL or len(self._pending) >= _MAX_HELD_WHEN_FULL):
            # Refused before a sequence is taken: the feed shows no gap for it.
            self.refused_total += 1
            raise StorageFullError(f"state disk full, event refused: {self.storage_full}")
        seq = self._next_seq
        self._next_seq += 1
        event = _Pending(seq, source, severity, time.time(), build(seq))
        with self._work:
            self._wake_writer()
            self._pending.append(event)
            if incident is not None:
                self._pending_rows[incident[0]] = (1 if incident[1] else 0, incident[2])
        return seq

    def save_incident(self, incident_id: str, live: bool, row: str) -> None:
        """Persist an incident's state without an event (a change nobody needs to hear of yet)."""
        with self._work:
            self._wake_writer()
            self._pending_rows[incident_id] = (1 if live else 0, row)

    def set_cursor(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has everything up to ``seq`` (durable at the next commit)."""
        if seq <= self._cursors.get(name, 0):
            return
        self._cursors[name] = seq
        with self._work:
            self._wake_writer()
            self._pending_cursors[name] = seq

    def set_kv(self, key: str, value: bytes) -> None:
        with self._work:
            self._wake_writer()
            self._pending_kv[key] = value

    def refresh_cursors(self) -> None:
        """Take cursors moved on disk by ``edge-gateway outbox skip`` (they only move forward)."""
        assert self._rconn is not None
        with self._read_lock:
            stored = dict(self._rconn.execute("SELECT name, seq FROM cursors").fetchall())
        for name in self._consumers:
            if int(stored.get(name, 0)) > self._cursors.get(name, 0):
                self._cursors[name] = int(stored[name])

    def get_kv(self, key: str) -> bytes | None:
        # The read connection: the writer thread may be committing on the other one right now.
        assert self._rconn is not None
        with self._read_lock:
            row = self._rconn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
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
        assert self._rconn is not None
        with self._read_lock:
            return [r[0] for r in self._rconn.execute("SELECT row FROM incidents WHERE live = 1")]

    async def run(self) -> None:
        """Keep the writer thread committing until cancelled; then commit what is left and stop it.

        Raises the error of a failed commit (the writer stops at the first one).
        """
        self._start_writer()
        try:
            await self._failed.wait()
            assert self._failure is not None
            raise self._failure
        finally:
            # Blocking on purpose: a cancelled task must not end with accepted events uncommitted
            # or a thread still writing. At most the commit in flight and one more.
            self._stop_writer()

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        self._start_writer()
        with self._work:
            # What is pending goes into the next group the writer takes; with nothing pending, a
            # group in flight is the last one that holds anything appended so far.
            if self._has_pending():
                ticket = self._taken + 1
                self._urgent = True
                self._work.notify()
            else:
                ticket = self._taken
        failures = self._disk_failures
        while self._done < ticket and self._failure is None:
            if self._disk_failures != failures:
                raise OutboxError(f"not stored yet, the state disk is full: {self.storage_full}")
            await self._commit_seen.wait()
        if self._done < ticket:
            raise OutboxError(
                f"events up to {self._next_seq - 1} were accepted but only {self.committed_seq} committed"
            ) from self._failure

    def stop_intake(self) -> None:
        self._closing = True

    def _has_pending(self) -> bool:
        return bool(self._pending or self._pending_rows or self._pending_cursors or self._pending_kv)

    def _wake_writer(self) -> None:
        # Called under self._work before adding to the group: only the first addition to an empty
        # group can find the writer waiting; later ones find it committing or gathering, and it
        # takes them with the group anyway.
        if not self._has_pending():
            self._work.notify()

    def _start_writer(self) -> None:
        if self._writer is None and self._failure is None:
            loop = asyncio.get_running_loop()
            # A daemon: an outbox nobody closed must not keep the process from exiting.
            self._writer = threading.Thread(target=self._write, args=(loop,), name="outbox-writer", daemon=True)
            self._writer.start()

    def _stop_writer(self) -> None:
        if self._writer is None:
            return
        with self._work:
            self._stopping = True
            self._work.notify()
        self._writer.join()
        self._writer = None
        self._stopping = False

    def _write(self, loop: asyncio.AbstractEventLoop) -> None:
        """The writer thread: take the pending group, commit it, tell the loop; until stopped."""
        while True:
            if self._degraded:
                self._try_recovery(loop)
            with self._work:
                # Degraded, the writer also wakes to see whether space has returned.
                retry = _FULL_RETRY_S if self._degraded else None
                if not self._work.wait_for(lambda: self._stopping or self._has_pending(), timeout=retry):
                    continue
                if self._interval > 0:
                    # Let a burst gather so it shares one fsync; flush() and shutdown don't wait.
                    self._work.wait_for(lambda: self._stopping or self._urgent, timeout=self._interval)
                if not self._has_pending():
                    return  # stopping, and everything accepted is committed
                batch = (self._pending, self._pending_rows, self._pending_cursors, self._pending_kv)
                self._pending, self._pending_rows, self._pending_cursors, self._pending_kv = [], {}, {}, {}
                self._taken += 1
                self._urgent = False
            try:
                dropped = self._commit_batch(*batch)
            except Exception as exc:
                if not _disk_trouble(exc.__cause__ if isinstance(exc, OutboxError) else exc):
                    _call_soon(loop, self._commit_failed, exc)
                    return
                if not self._hold_for_space(loop, batch, exc):
                    return
                continue
            _call_soon(loop, self._committed, dropped)

    def _hold_for_space(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: tuple[list[_Pending], dict[str, tuple[int, str]], dict[str, int], dict[str, bytes]],
        exc: Exception,
    ) -> bool:
        """A full disk: put the group back in front of what came since, tell the loop, make room,
        and wait a moment before the next try. False when stopping (what is held is lost with the
        process: the disk never took it)."""
        events, rows, cursors, kv = batch
        with self._work:
            self._pending = events + self._pending
            self._pending_rows = {**rows, **self._pending_rows}
            for name, seq in cursors.items():
                self._pending_cursors[name] = max(seq, self._pending_cursors.get(name, 0))
            self._pending_kv = {**kv, **self._pending_kv}
            self._taken -= 1  # the same group is taken again
            held = len(self._pending)
        why = str(exc.__cause__ or exc)
        _call_soon(loop, self._storage_trouble, why)
        log.warning("outbox: cannot store (%s); holding %d events in memory and retrying", why, held)
        self._degraded = True
        self._next_recovery_try = time.monotonic() + _FULL_RETRY_S
        with contextlib.suppress(FileNotFoundError):
            self._reserve.unlink()
        self._make_room()
        with self._work:
            self._work.wait_for(lambda: self._stopping, timeout=_FULL_RETRY_S)
            if self._stopping:
                log.error("outbox: stopping with the state disk full; %d events were never stored", held)
                return False
        return True

    def _make_room(self) -> None:
        """Free space inside the database: delivered events go now, whatever their retention."""
        conn = self._wconn
        assert conn is not None
        # The log is checkpointed and truncated first: the delete is written to it, and needs room.
        # The pages it frees are then reused by the held events instead of growing the file.
        try:
            with self._write_lock:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("DELETE FROM events WHERE seq <= ?", (self.delivered_seq,))
                conn.execute("DELETE FROM incidents WHERE live = 0")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # the next try may have room
            log.warning("outbox: making room failed: %s", exc)

    def _write_reserve(self) -> bool:
        """(Re)write the reserve file; False, leaving none, when the disk has no room for it."""
        if self._reserve_bytes <= 0:
            return True
        try:
            with open(self._reserve, "wb") as f:
                f.write(bytes(self._reserve_bytes))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            return False
        return True

    def _try_recovery(self, loop: asyncio.AbstractEventLoop) -> None:
        """Degraded: once a second, see whether space has returned (the reserve fits again)."""
        now = time.monotonic()
        if now < self._next_recovery_try:
            return
        self._next_recovery_try = now + _FULL_RETRY_S
        # Room for the reserve and as much again: else the reserve would just take back the
        # room it left, and the box would flap between full and not.
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        if st.f_bavail * st.f_frsize >= 2 * self._reserve_bytes and self._write_reserve():
            self._degraded = False
            log.warning("outbox: the state disk has room again")
            _call_soon(loop, self._storage_recovered)

    def _storage_trouble(self, why: str) -> None:
        first = self.storage_full is None
        self.storage_full = why
        self._disk_failures += 1
        self._announce_commit()  # flush() waiters answer now instead of waiting for space
        if first:
            self._on_storage(why)

    def _storage_recovered(self) -> None:
        if self.storage_full is not None:
            self.storage_full = None
            self._on_storage(None)

    def _committed(self, dropped: int) -> None:
        self._done += 1
        self._announce_commit()
        if dropped:
            self._on_overflow(dropped)

    def _commit_failed(self, exc: Exception) -> None:
        self._failure = exc
        self._failed.set()
        self._announce_commit()

    def _announce_commit(self) -> None:
        self._commit_seen.set()
        self._commit_seen = asyncio.Event()

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
            _insert_rows(
                conn,
                "events(seq, source, severity, created, body)",
                "",
                [(e.seq, e.source, e.severity, e.created, e.body) for e in events],
            )
            _insert_rows(
                conn,
                "incidents(id, live, row)",
                " ON CONFLICT(id) DO UPDATE SET live = excluded.live, row = excluded.row",
                [(k, live, row) for k, (live, row) in rows.items()],
            )
            _insert_rows(
                conn, "cursors(name, seq)", " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq", list(cursors.items())
            )
            _insert_rows(conn, "kv(k, v)", " ON CONFLICT(k) DO UPDATE SET v = excluded.v", list(kv.items()))
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
        dropped = 0
        if self._undelivered_bytes > self._budget:
            # After the COMMIT: a failure here must not make the writer take the group again.
            try:
                dropped = self._enforce_budget()
            except sqlite3.Error as exc:
                log.warning("outbox: keeping to the budget failed, next commit tries again: %s", exc)
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
        try:
            with self._write_lock, conn:
                cur = conn.execute("DELETE FROM events WHERE seq <= ? AND created < ?", (self.delivered_seq, cutoff))
                conn.execute("DELETE FROM incidents WHERE live = 0")
        except sqlite3.Error as exc:  # a full disk: the writer makes room its own way
            log.warning("outbox: pruning failed: %s", exc)
            return 0
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

    def capacity(self, window_s: float = CAPACITY_WINDOW_S) -> OutboxCapacity:
        """How long an outage the free budget covers at the recent intake rate. Blocking."""
        assert self._rconn is not None
        now = time.time()
        with self._read_lock:
            intake, history_start = intake_since(self._rconn, now - window_s)
        per_hour, hours = covers_hours(self._budget - self._undelivered_bytes, intake, history_start, now, window_s)
        self._metrics.outbox_capacity_hours.set(float("inf") if hours is None else hours)
        return OutboxCapacity(
            budget_bytes=self._budget,
            undelivered_bytes=self._undelivered_bytes,
            undelivered_events=self.committed_seq - self.delivered_seq,
            oldest_undelivered_age_s=self.oldest_undelivered_age(),
            dropped_total=self._dropped_total,
            window_s=window_s,
            intake_bytes_per_hour=per_hour,
            covers_hours=hours,
        )

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

    async def pull(self, after: int, limit: int, wait_s: float = 0.0, *, peek: bool = False) -> list[StoredEvent]:
        """The pull feed: committed events after ``after``, oldest first, waiting up to ``wait_s``
        for one when there are none yet.

        On a pull-only box, asking for events after N says the platform holds everything up to N:
        the :data:`FEED` cursor moves there, and what it passed counts as delivered. A ``peek``
        (the status page showing the feed) moves nothing, so events the platform never pulled are
        still owed to it. Raises :class:`FeedAheadError` when ``after`` is past the last commit.
        """
        committed = self.committed_seq
        if after > committed:
            raise FeedAheadError(after, committed)
        if FEED in self._consumers and not peek:
            self.set_cursor(FEED, after)
        if wait_s and self.committed_seq <= after:
            await self.wait_committed(after, wait_s)
        return await asyncio.to_thread(self.read_after, after, limit)

    async def wait_committed(self, after: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an event with seq > after to be committed."""
        if self.committed_seq > after:
            return True
        try:
            async with asyncio.timeout(timeout):
                while self.committed_seq <= after:
                    await self._commit_seen.wait()
        except TimeoutError:
            return False
        return True


def skip_event(path: Path, consumer: str, seq: int) -> str:
    """Move ``consumer``'s cursor past event ``seq``, which must be the next one it owes: how an
    operator gives up on one event a receiver refuses for good. Safe while the daemon runs (it
    takes the cursor on SIGHUP). Returns what was done; OutboxError says why not."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT seq FROM cursors WHERE name = ?", (consumer,)).fetchone()
        cursor = 0 if row is None else int(row[0])
        nxt = conn.execute("SELECT MIN(seq) FROM events WHERE seq > ?", (cursor,)).fetchone()[0]
        if nxt != seq:
            conn.execute("ROLLBACK")
            owed = "nothing" if nxt is None else f"event {nxt}"
            raise OutboxError(f"{consumer} is owed {owed} next, not event {seq}: only the next event can be skipped")
        conn.execute(
            "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
            (consumer, seq),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot skip in {path}: {exc}") from exc
    finally:
        conn.close()
    log.warning("outbox: event %d skipped for %s by the operator", seq, consumer)
    return f"{consumer}: event {seq} skipped; the daemon takes it on reload (systemctl reload edge-gateway)"


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object) -> None:
    # A closed loop (close() from synchronous code drained a last group) has nobody left to tell.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
