"""Backoff bounds and the Supervisor's states, budget and recovery (with tiny delays)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

import pytest

from drivers.base import DriverState
from edge_core.backoff import Backoff
from edge_core.errors import DriverConnectError
from gateway.metrics import Metrics
from gateway.supervisor import Supervisor, SupervisorHealth


def test_backoff_doubles_within_jittered_bounds_up_to_the_cap() -> None:
    random.seed(7)
    b = Backoff(base_s=0.5, max_s=30.0)
    for n in range(12):
        cap = min(30.0, 0.5 * 2**n)
        d = b.next_delay()
        assert cap / 2 <= d <= cap, (n, d)
    b.reset()
    assert 0.25 <= b.next_delay() <= 0.5


def test_backoff_jitter_spreads_the_delays() -> None:
    delays = {round(Backoff(1.0, 8.0).next_delay(), 6) for _ in range(50)}
    assert len(delays) > 40


def test_backoff_stays_capped_after_a_very_long_outage() -> None:
    # A device down for days: thousands of attempts must keep giving the capped delay.
    b = Backoff(base_s=0.5, max_s=30.0)
    for _ in range(5000):
        d = b.next_delay()
    assert 15.0 <= d <= 30.0


class Script:
    """A supervised target that plays one behaviour per run: 'fail', 'crash', 'end', or 'connect'."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        self.runs = 0
        self.connected = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, on_connected: Callable[[], None]) -> None:
        step = self.plan[min(self.runs, len(self.plan) - 1)]
        self.runs += 1
        await asyncio.sleep(0)
        if step == "fail":
            raise DriverConnectError("broker down", device_id="mqtt:village")
        if step == "crash":
            raise RuntimeError("bug")
        if step == "connect":
            on_connected()
            self.connected.set()
            await self.release.wait()
            self.release.clear()
            raise DriverConnectError("connection lost", device_id="mqtt:village")
        # 'end': returns without an error


def sup(plan: list[str], **kw: object) -> tuple[Supervisor, Script, list[SupervisorHealth], Metrics]:
    script = Script(plan)
    states: list[SupervisorHealth] = []
    m = Metrics()
    s = Supervisor("mqtt:village", script, m, backoff=Backoff(0.001, 0.004), on_state=states.append, **kw)  # type: ignore[arg-type]
    return s, script, states, m


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_states_connect_backoff_and_stop() -> None:
    s, script, states, m = sup(["connect"])
    assert s.health.state is DriverState.STARTING
    task = asyncio.create_task(s.run())
    await until(script.connected.is_set)
    assert s.health.state is DriverState.CONNECTED and s.health.last_error is None  # type: ignore[comparison-overlap]
    assert m.registry.get_sample_value("gateway_task_state", {"task": "mqtt:village", "state": "connected"}) == 1
    assert m.registry.get_sample_value("gateway_task_state", {"task": "mqtt:village", "state": "starting"}) == 0
    script.connected.clear()
    script.release.set()  # the connection drops
    await until(script.connected.is_set)  # ...and is re-established
    await stop(task)
    assert s.health.state is DriverState.STOPPED
    seq = [h.state for h in states]
    assert seq[:5] == [
        DriverState.STARTING,
        DriverState.CONNECTED,
        DriverState.BACKOFF,
        DriverState.STARTING,
        DriverState.CONNECTED,
    ]
    assert seq[-1] is DriverState.STOPPED
    assert s.health.restarts == 1
    assert m.registry.get_sample_value("gateway_task_restarts_total", {"task": "mqtt:village"}) == 1


async def test_failed_after_budget_failures_in_window_then_recovers_on_connect() -> None:
    s, script, states, _m = sup(["fail"] * 5 + ["connect"], budget=5, window_s=60)
    task = asyncio.create_task(s.run())
    try:
        await until(script.connected.is_set)
    finally:
        await stop(task)
    seq = [h.state for h in states]
    # Four failures back off and retry; the fifth within the window is FAILED, and it keeps trying.
    assert seq.count(DriverState.BACKOFF) == 4
    failed_at = seq.index(DriverState.FAILED)
    assert seq[failed_at - 1] is DriverState.STARTING and seq[failed_at + 1] is DriverState.CONNECTED
    assert script.runs == 6
    assert states[failed_at].last_error == "mqtt:village: broker down"
    assert states[failed_at].restarts == 4  # counted after the state is reported


async def test_failures_spread_beyond_the_window_are_not_failed() -> None:
    s, script, states, _m = sup(["fail"] * 6 + ["connect"], budget=3, window_s=0.0)
    task = asyncio.create_task(s.run())
    try:
        await until(script.connected.is_set)
    finally:
        await stop(task)
    assert DriverState.FAILED not in [h.state for h in states]


async def test_connect_resets_the_backoff() -> None:
    backoff = Backoff(0.001, 10.0)
    s = Supervisor("x", Script(["fail", "fail", "fail", "connect"]), Metrics(), backoff=backoff)
    task = asyncio.create_task(s.run())
    try:
        await until(lambda: s.health.state is DriverState.CONNECTED)
        assert backoff.attempt == 0
    finally:
        await stop(task)


@pytest.mark.parametrize(("step", "error"), [("crash", "RuntimeError: bug"), ("end", "ended unexpectedly")])
async def test_crashes_and_unexpected_ends_are_restarted(step: str, error: str) -> None:
    s, script, states, _m = sup([step, "connect"])
    task = asyncio.create_task(s.run())
    try:
        await until(script.connected.is_set)
    finally:
        await stop(task)
    backoff = next(h for h in states if h.state is DriverState.BACKOFF)
    assert backoff.last_error == error
    assert script.runs == 2
