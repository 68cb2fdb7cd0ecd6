"""What the channels export at /metrics, read from their stats at scrape time, and doctor's probe.

The link's state, last error and alarm delivery (``gateway_delivered_events_total`` and
``gateway_delivery_failures_total`` with consumer ``gb28181:<id>``) are already exported for
every link; this adds what only a GB/T 28181 channel has. The probe sends one SIP OPTIONS (no
registration: a second REGISTER with the box's id would take the daemon's place on the platform).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_config.gb28181 import Gb28181Settings
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.sip import SipMessage, SipParseError, new_branch, new_tag, parse_head

__all__ = ["ChannelCollector", "probe"]


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
        for ch in self._channels:
            name = ch.cfg.id
            registered.add_metric([name], 1.0 if ch.stats.registered else 0.0)
            registrations.add_metric([name], float(ch.stats.registrations))
            misses.add_metric([name], float(ch.stats.keepalive_misses))
            live.add_metric([name], float(ch.live_sessions))
            if ch.stats.clock_skew_s is not None:
                skew.add_metric([name], ch.stats.clock_skew_s)
        yield from (registered, registrations, misses, live, skew)


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
