"""Stopping: a link that ignores cancellation delays the stop, and the log says which and where."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest

from edge_core.tasks import await_stopped, daemon_work_running, in_daemon_thread


async def stubborn() -> None:
    # A driver that swallows one cancellation (a library finishing its own handshake, say).
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(0.3)


async def test_a_task_slow_to_stop_is_named_with_where_it_waits(caplog: pytest.LogCaptureFixture) -> None:
    slow = asyncio.create_task(stubborn(), name="gw[mqtt:village].supervisor")
    quick = asyncio.create_task(asyncio.sleep(3600), name="gw[camera:gate].supervisor")
    await asyncio.sleep(0)
    for t in (slow, quick):
        t.cancel()
    with caplog.at_level(logging.WARNING, logger="edge_core.tasks"):
        await await_stopped([slow, quick], 0.05)
    assert slow.done() and quick.cancelled()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("stopping: gw[mqtt:village].supervisor still running after 0 s, waiting in ")
    assert "test_stop.py" in lines[0] and "stubborn" in lines[0]


async def test_a_lost_cancellation_does_not_stall_the_stop() -> None:
    # A cancellation swallowed for good: the driver then waits for its connection to drop, which
    # never comes during a stop.
    async def forgets() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)

    task = asyncio.create_task(forgets(), name="gw[opcua:pump-plc-01].supervisor")
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(await_stopped([task], 0.05), 5)
    assert task.cancelled()


async def test_only_the_jobs_left_to_the_daemon_thread_keep_the_exit_short() -> None:
    # `edge-gateway run` ends with os._exit while such a job still runs (a kernel compile the
    # interpreter's finalisation would abort); other daemon threads, a driver's or a test
    # runner's, must not take that path, or an in-process run ends the process hosting it.
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    assert not daemon_work_running()
    job = in_daemon_thread(release.wait, 5.0)
    assert daemon_work_running()
    release.set()
    assert await job is True
    other.join(5.0)
    for _ in range(500):  # the thread ends just after it hands its result over
        if not daemon_work_running():
            break
        await asyncio.sleep(0.01)
    assert not daemon_work_running()
