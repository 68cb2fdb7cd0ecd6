"""The gateway's once-a-second round: what no event triggers (silence rules, links down too long,
incidents whose cooldown ended, gauges, pruning) and the watchdog ping that proves the loop lives."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_core.signals import Category
from gateway.incidents import IncidentManager
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.outbox import Outbox, OutboxCapacity
from gateway.rules import RuleEngine
from gateway.supervisor import Supervisor

__all__ = ["Housekeeping"]

_TICK_S = 1.0
_PRUNE_EVERY_S = 60.0


@dataclass
class Housekeeping:
    rules: RuleEngine
    incidents: IncidentManager
    outbox: Outbox
    metrics: Metrics
    notifier: Notifier
    supervisors: list[Supervisor]
    watch: Callable[[float], None]
    """The link and box watches' own checks, given the time."""
    capacity: OutboxCapacity | None = None
    """Refreshed once a minute (a bisect and a sum over a day of events)."""

    def status_line(self) -> str:
        up = sum(1 for s in self.supervisors if s.health.state.value == "connected")
        lag, open_n = self.outbox.committed_seq - self.outbox.delivered_seq, len(self.incidents.open)
        line = f"{up}/{len(self.supervisors)} links up, {open_n} open incidents, {lag} events undelivered"
        hours = None if self.capacity is None else self.capacity.covers_hours
        return line if hours is None else f"{line}, outbox holds {hours:,.0f} h of outage"

    def save_detector_state(self) -> None:
        for key, blob in self.rules.anomaly_states().items():
            self.outbox.set_kv(key, blob)

    async def run(self) -> None:
        last_prune = time.monotonic()
        interval = min(_TICK_S, Notifier.watchdog_interval_s() or _TICK_S)
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            self.rules.tick(now)
            self.watch(now)
            for inc in self.incidents.expire():
                self.outbox.save_incident(inc.id, False, json.dumps(inc.to_row()))
            self.metrics.outbox_oldest_age.set(await asyncio.to_thread(self.outbox.oldest_undelivered_age))
            live = self.incidents.open
            for cat in Category:
                self.metrics.open_incidents.labels(cat.value).set(sum(1 for i in live if i.category is cat))
            if time.monotonic() - last_prune > _PRUNE_EVERY_S:
                last_prune = time.monotonic()
                self.save_detector_state()
                await asyncio.to_thread(self.outbox.prune_delivered)
                self.capacity = await asyncio.to_thread(self.outbox.capacity)
            # The watchdog ping comes from this loop on purpose: if the event loop or this tick
            # wedges, systemd stops hearing from us and restarts the service.
            self.notifier.watchdog()
            self.notifier.status(self.status_line())
