"""What the channels export at /metrics and to the status page, read from their stats when
asked, and doctor's probe.

The link's state (``gateway_task_state``), last error and delivery attempts
(``gateway_delivered_events_total`` and ``gateway_delivery_failures_total`` with consumer
``gb28181:<id>``) are exported for every link; this adds what only a GB/T 28181 channel has. The
probe sends one SIP OPTIONS (no registration: a second REGISTER with the box's id would take the
daemon's place on the platform).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_config.gb28181 import Gb28181Settings
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.sip import SipMessage, SipParseError, new_branch, new_tag, parse_head

__all__ = ["ChannelCollector", "channel_status", "probe"]

# Outbox events read per scrape or page refresh to count pending alarms (see pending.py).
_SCRAPE_BUDGET = 2_000
_PAGE_BUDGET = 20_000


class ChannelCollector(Collector):
    """Registration, keepalive misses and live sessions of every GB/T 28181 channel."""

    def __init__(self, channels: Sequence[Gb28181Channel]) -> None:
        self._channels = list(channels)

    def collect(self) -> Iterator[Metric]:
        registered = GaugeMetricFamily(
            "gateway_gb28181_registered", "1 while registered with the platform.", labels=["channel"]
        )
        registrations = CounterMetricFamily(
            "gateway_gb28181_registrations", "Successful registrations and refreshes.", labels=["channel"]
        )
        misses = GaugeMetricFamily(
            "gateway_gb28181_keepalive_misses", "Keepalives unanswered in a row.", labels=["channel"]
        )
        live = GaugeMetricFamily("gateway_gb28181_live_sessions", "Live video sessions now.", labels=["channel"])
        skew = GaugeMetricFamily(
            "gateway_gb28181_clock_skew_seconds", "Platform's Date minus our clock at registration.", labels=["channel"]
        )
        sent = CounterMetricFamily(
            "gateway_gb28181_alarms_sent", "Alarms the platform acknowledged with a 2xx.", labels=["channel"]
        )
        pending = GaugeMetricFamily(
            "gateway_gb28181_alarms_pending",
            "Alarms in the outbox the platform has not acknowledged yet (a lower bound while counting).",
            labels=["channel"],
        )
        for ch in self._channels:
            name = ch.cfg.id
            registered.add_metric([name], 1.0 if ch.stats.registered else 0.0)
            registrations.add_metric([name], float(ch.stats.registrations))
            misses.add_metric([name], float(ch.stats.keepalive_misses))
            live.add_metric([name], float(ch.live_sessions))
            if ch.stats.clock_skew_s is not None:
                skew.add_metric([name], ch.stats.clock_skew_s)
            sent.add_metric([name], float(ch.stats.alarms_sent))
            pending.add_metric([name], float(ch.pending.count(_SCRAPE_BUDGET)[0]))
        yield from (registered, registrations, misses, live, skew, sent, pending)


def channel_status(ch: Gb28181Channel, state: str | None) -> dict[str, Any]:
    """The status page's view of one channel (blocking: it counts pending alarms)."""
    pending, exact = ch.pending.count(_PAGE_BUDGET)
    cfg = ch.cfg
    return {
        "id": cfg.id,
        "platform": f"{cfg.platform_id} at {cfg.host}:{cfg.port}/{cfg.transport}",
        "device_id": cfg.device_id,
        "version": cfg.version,
        "state": state,
        "registered": ch.stats.registered,
        "registrations": ch.stats.registrations,
        "last_register_at": ch.stats.last_register_at,
        "keepalive_misses": ch.stats.keepalive_misses,
        "alarms_sent": ch.stats.alarms_sent,
        "alarms_pending": pending,
        "alarms_pending_exact": exact,
        "live_sessions": ch.live_sessions,
    }


class _Answer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.got.done():
            self.got.set_result(data)


async def probe(cfg: Gb28181Settings, timeout_s: float = 3.0) -> str:
    """One OPTIONS to the platform: its status line (any answer means a SIP server listens).
    Raises TimeoutError or OSError when nothing answers."""
    msg = SipMessage(method="OPTIONS", uri=f"sip:{cfg.platform_id}@{cfg.domain}")
    proto = cfg.transport.upper()
    msg.headers = [
        ("Via", f"SIP/2.0/{proto} 127.0.0.1:5060;rport;branch={new_branch()}"),
        ("From", f"<sip:{cfg.device_id}@{cfg.domain}>;tag={new_tag()}"),
        ("To", f"<sip:{cfg.platform_id}@{cfg.domain}>"),
        ("Call-ID", f"{new_tag()}@doctor"),
        ("CSeq", "1 OPTIONS"),
        ("Max-Forwards", "70"),
    ]
    async with asyncio.timeout(timeout_s):
        if cfg.transport == "tcp":
            reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
            try:
                writer.write(msg.encode())
                data = await reader.readuntil(b"\r\n\r\n")
            finally:
                writer.close()
        else:
            loop = asyncio.get_running_loop()
            transport, proto_ = await loop.create_datagram_endpoint(_Answer, remote_addr=(cfg.host, cfg.port))
            try:
                for _ in range(3):
                    transport.sendto(msg.encode())
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout_s / 3):
                            data = await asyncio.shield(proto_.got)
                            break
                else:
                    raise TimeoutError
            finally:
                transport.close()
    try:
        answer = parse_head(data.partition(b"\r\n\r\n")[0])
    except SipParseError:
        return "an answer that is not SIP"
    return f"{answer.status} {answer.reason}" if not answer.is_request else "a SIP request"
