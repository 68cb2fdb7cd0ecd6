"""Logging for a systemd service: journald adds time and unit, so we add the priority prefix only."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging"]

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that would drown a field technician's journal.
    for noisy in ("gmqtt", "amqtt", "zeep", "aiohttp.access", "transitions", "aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # asyncua logs a traceback at ERROR whenever a server goes away; our driver already turns
    # that into one DriverError line with the device named, so its own logging is redundant.
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
