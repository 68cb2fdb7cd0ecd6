"""Short background jobs that nobody awaits, and stopping tasks that may not want to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = [
    "TaskSet",
    "await_stopped",
    "daemon_work_running",
    "in_daemon_thread",
    "raise_if_cancelled",
    "unless_stopped",
]

log = logging.getLogger(__name__)

# The threads in_daemon_thread started, so that the process's exit can tell them from the daemon
# threads of everything else it runs in (a driver's ingest, a test runner's own).
_left_running: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


class TaskSet:
    """Keeps a strong reference to each task until it ends (asyncio holds only a weak one, so an
    unreferenced task can be collected mid-flight), and logs the ones that fail."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception())

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def await_stopped(tasks: list[asyncio.Task[None]], retry_s: float) -> None:
    """Wait for cancelled tasks, cancelling again any still running after ``retry_s``.

    A cancellation can be lost: a library may catch it, and Python 3.11's ``asyncio.wait_for``
    swallows it when the awaited result lands at the same moment (cpython gh-86296). The OPC-UA
    link was once seen still running after its cancel, its cause not found; the driver then runs
    on as if nothing happened. So a stop keeps cancelling, and logs the task and where it waits.
    """
    pending = set(tasks)
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=retry_s)
        for t in pending:
            log.warning(
                "stopping: %s still running after %.0f s, waiting in %s; cancelling it again",
                t.get_name(),
                retry_s,
                _awaiting(t),
            )
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _awaiting(task: asyncio.Task[None]) -> str:
    """The chain of coroutines a task is suspended in (Task.get_stack shows only the outermost)."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and getattr(coro, "cr_frame", None) is not None and len(where) < 12:
        f = coro.cr_frame
        where.append(f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}")
        coro = coro.cr_await
    return " > ".join(where) or "(unknown)"


def in_daemon_thread(fn: Callable[..., object], *args: object) -> asyncio.Future[object]:
    """``fn(*args)`` in a daemon thread: unlike ``to_thread``'s pool, which the interpreter joins
    at exit, nobody waits for it when the process ends."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[object] = loop.create_future()

    def settle(result: object, exc: BaseException | None) -> None:
        if not fut.done():
            fut.set_exception(exc) if exc is not None else fut.set_result(result)

    def work() -> None:
        try:
            result: object = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    thread = threading.Thread(target=work, name="gw-warm", daemon=True)
    _left_running.add(thread)
    thread.start()
    return fut


def daemon_work_running() -> bool:
    """True while a job of ``in_daemon_thread`` has not finished."""
    return any(t.is_alive() for t in list(_left_running))


async def unless_stopped(fut: asyncio.Future[object], stop: asyncio.Event) -> bool:
    """Await ``fut`` unless ``stop`` is set first; True when it finished."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        waiters: set[asyncio.Future[Any]] = {fut, stopping}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if fut.done():
        fut.result()
        return True
    return False


def raise_if_cancelled(base: int = 0) -> None:
    """Raise the cancellation a client library swallowed.

    Some clients catch CancelledError inside their own calls (nats-py's flush, asyncua's connect
    and subscribe), so a task cancelled at shutdown carries on as if nothing happened, and the stop
    waits for it. The request is still recorded on the task (``cancelling()``, above ``base``, the
    count when the task's work began): act on it after every call into such a client.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling() > base:
        raise asyncio.CancelledError
