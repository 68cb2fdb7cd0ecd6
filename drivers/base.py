"""What every southbound driver hands the gateway, and the shape a driver has."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple, Protocol

__all__ = ["Driver", "DriverState", "Quality", "Reading", "ReadingSink"]


class Quality(enum.StrEnum):
    """Quality of a reading. Bad and uncertain readings are kept and flagged, never dropped."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class Reading(NamedTuple):
    """One value of one point of one device.

    ``time`` is the source timestamp in seconds since the epoch (the device's own when it sends one,
    else the time the gateway received it). A NamedTuple rather than a frozen dataclass: it is
    just as immutable and typed, and several times cheaper to create on the per-reading hot path.
    """

    device: str
    point: str
    value: float
    time: float
    unit: str | None = None
    quality: Quality = Quality.GOOD


ReadingSink = Callable[[Reading], None]
"""Called by a driver for every reading, on the event loop. It must not block."""


class DriverState(enum.StrEnum):
    """Connection state of a driver, as shown on /metrics and the status page."""

    STARTING = "starting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


class Driver(Protocol):
    """A southbound connection (one broker, one OPC-UA server, one camera).

    ``run`` connects, delivers readings to ``sink`` until cancelled, and raises a
    :class:`edge_core.errors.DriverError` subclass when the connection fails; it never
    catches broadly and never retries by itself: its supervisor does that, with backoff.
    ``on_connected`` is called once the connection is up and subscriptions are in place, so the
    supervisor can reset its backoff and report the device online.
    """

    @property
    def name(self) -> str:
        """Stable id used in task names, logs and metrics."""
        ...

    async def run(self, sink: ReadingSink, on_connected: Callable[[], None]) -> None:
        """Connect and deliver readings until cancelled; raise DriverError on failure."""
        ...
