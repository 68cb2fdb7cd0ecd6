"""Supervision of long-lived tasks: restart with capped, jittered backoff, a restart budget, and
a health state every part of the gateway (status page, /readyz, metrics, systemd STATUS) reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.base import DriverState
from edge_core.backoff import Backoff
from edge_core.errors import DriverError, LinkHalted
from gateway.metrics import Metrics

__all__ = ["Supervisor", "SupervisorHealth"]

log = logging.getLogger(__name__)

Target = Callable[[Callable[[], None]], Awaitable[None]]
"""A supervised coroutine: called with an ``on_connected`` callback, runs until it fails."""


@dataclass(frozen=True, slots=True)
class SupervisorHealth:
    name: str
    state: DriverState
    since: float
    restarts: int
    last_error: str | None
    halted: bool = False
    """Stopped on purpose (:class:`edge_core.errors.LinkHalted`) until resumed (SIGHUP)."""


class Supervisor:
    """Keeps one target running; after ``budget`` failures within ``window_s`` it reports FAILED
    (and keeps trying at the capped delay, since a field device may come back any time)."""

    def __init__(
        self,
        name: str,
        target: Target,
        metrics: Metrics,
        *,
        backoff: Backoff | None = None,
        budget: int = 5,
        window_s: float = 60.0,
        on_state: Callable[[SupervisorHealth], None] | None = None,
    ) -> None:
        self.name = name
        self._target = target
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        self._budget = budget
        self._window_s = window_s
        self._failures: deque[float] = deque(maxlen=budget)
        self._on_state = on_state
        self._state = DriverState.STOPPED
        self._since = time.time()
        self._restarts = 0
        self._last_error: str | None = None
        self._halted = False
        self._resume = asyncio.Event()
        self._set(DriverState.STARTING)

    @property
    def health(self) -> SupervisorHealth:
        return SupervisorHealth(
            self.name, self._state, self._since, self._restarts, self._last_error, halted=self._halted
        )

    def resume(self) -> None:
        """Let a halted link try again (the operator fixed what it was waiting for)."""
        self._resume.set()

    def _set(self, state: DriverState) -> None:
        if state is self._state:
            return
        self._state = state
        self._since = time.time()
        for s in DriverState:
            self._metrics.task_state.labels(self.name, s.value).set(1 if s is state else 0)
        if self._on_state is not None:
            self._on_state(self.health)

    def _connected(self) -> None:
        # A link that came up is healthy again: both the delay and the failure budget start over.
        self._backoff.reset()
        self._failures.clear()
        self._last_error = None
        self._set(DriverState.CONNECTED)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._target(self._connected)
                    self._last_error = "ended unexpectedly"
                    log.error("%s: ended without an error; restarting", self.name)
                except LinkHalted as exc:
                    await self._halt(str(exc))
                    continue
                except DriverError as exc:
                    # Expected field trouble (device down, broker restarting): one line, no traceback.
                    self._last_error = str(exc)
                    log.warning("%s", exc)
                except Exception as exc:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("%s: crashed", self.name)
                now = time.monotonic()
                self._failures.append(now)
                failed = len(self._failures) >= self._budget and now - self._failures[0] <= self._window_s
                self._set(DriverState.FAILED if failed else DriverState.BACKOFF)
                delay = self._backoff.next_delay()
                self._restarts += 1
                self._metrics.task_restarts.labels(self.name).inc()
                await asyncio.sleep(delay)
                if not failed:
                    self._set(DriverState.STARTING)
        finally:
            self._set(DriverState.STOPPED)

    async def _halt(self, why: str) -> None:
        """FAILED with the reason, no retry until :meth:`resume`; then a fresh start."""
        log.error("%s", why)
        self._resume.clear()
        self._last_error, self._halted = why, True
        # Set directly: _set skips a state that did not change, and the reason must be seen.
        self._state = DriverState.BACKOFF
        self._set(DriverState.FAILED)
        await self._resume.wait()
        self._halted = False
        self._backoff.reset()
        self._failures.clear()
        self._set(DriverState.STARTING)
