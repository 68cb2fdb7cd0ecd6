"""How many alarms wait in the outbox for a GB/T 28181 channel: the status page and /metrics.

The channel's cursor passes every event it has dealt with; the alarms after it are pending. They
are counted incrementally (each event read once, wherever the cursor is), at most ``budget``
events a call, so a scrape after a day without the platform costs a bounded read and the count
catches up over a few calls (it says whether it has).
"""

from __future__ import annotations

import threading
from collections import deque

from gateway.gb28181.mapping import alarm_notice
from gateway.outbox import Outbox

__all__ = ["PendingAlarms"]


class PendingAlarms:
    """Alarms committed after ``consumer``'s cursor. Thread-safe (the API counts in a worker)."""

    def __init__(self, outbox: Outbox, consumer: str, channels: dict[str, str]) -> None:
        self._outbox = outbox
        self._consumer = consumer
        self._channels = channels
        self._lock = threading.Lock()
        self._scanned = 0
        self._alarms: deque[int] = deque()

    def count(self, budget: int) -> tuple[int, bool]:
        """(alarms pending, whether that is all of them: False while the scan lags behind)."""
        with self._lock:
            cursor = self._outbox.cursor(self._consumer)
            while self._alarms and self._alarms[0] <= cursor:
                self._alarms.popleft()
            self._scanned = max(self._scanned, cursor)
            events = self._outbox.read_after(self._scanned, budget)
            for ev in events:
                if alarm_notice(ev.body, self._channels) is not None:
                    self._alarms.append(ev.seq)
                self._scanned = ev.seq
            return len(self._alarms), self._scanned >= self._outbox.committed_seq
