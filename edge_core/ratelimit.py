"""Logging that cannot flood the journal when a device sends garbage at line rate."""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedLogger"]


class RateLimitedLogger:
    """Logs at most one message per key per ``interval_s``, then says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.WARNING, key, msg, args)

    def exception(self, key: str, msg: str, *args: object) -> None:
        """An error with the traceback of the exception being handled."""
        self._log(logging.ERROR, key, msg, args, exc_info=True)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...], exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        if n:
            self._logger.log(level, msg + " (%d similar suppressed)", *args, n, exc_info=exc_info)
        else:
            self._logger.log(level, msg, *args, exc_info=exc_info)
