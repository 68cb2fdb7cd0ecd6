"""MQTT terminals: one connection per broker, readings parsed from each point's topic.

The client is gmqtt, chosen by measurement (bench/mqtt_clients.py: it drains a broker several
times faster than aiomqtt). gmqtt's own reconnect loop is switched off: a lost connection ends
``run`` with DriverConnectError and the supervisor reconnects with backoff, subscribing again on
every new connection, so a broker restart loses no subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from drivers.base import Quality, Reading, ReadingSink
from drivers.tls import client_context, tls_failure
from edge_config.mqtt import MqttBroker, MqttDevice, MqttPoint
from edge_core.errors import DriverConnectError
from edge_core.ratelimit import RateLimitedLogger

__all__ = ["MqttDriver", "PayloadError", "parse_payload", "topic_matches"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 10.0
_ROUTE_CACHE_MAX = 65536
# Topics can be 65,535 bytes long and anyone who may publish under a wildcard picks them: the cache
# is bounded in bytes too (topic lengths plus a per-entry overhead), and very long topics are
# routed without being cached at all.
_ROUTE_CACHE_MAX_BYTES = 8 << 20
_ROUTE_CACHE_ENTRY_BYTES = 200
_ROUTE_CACHE_MAX_TOPIC = 1024


class PayloadError(ValueError):
    """A payload that does not hold a usable reading; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic-filter matching ('+' one level, '#' the rest)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        # MQTT 4.7.2: wildcards at the first level never match '$SYS'-style topics.
        return False
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


_decode_json = json.JSONDecoder().decode


@functools.lru_cache(maxsize=4096)
def _split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _walk(doc: Any, path: str) -> Any:
    node = doc
    for key in _split_path(path):
        if isinstance(node, dict):
            if key not in node:
                raise PayloadError("missing-field", f"no '{key}' in payload (path {path!r})")
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise PayloadError("missing-field", f"cannot follow {path!r} at '{key}'")
    return node


_MIN_TIME = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_MAX_TIME = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def _as_time(raw: Any) -> float:
    if isinstance(raw, bool):
        raise PayloadError("bad-time", f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        # Devices send seconds or milliseconds; 1e11 s is in the year 5138, so anything above is ms.
        try:
            t = float(raw) / 1000.0 if raw > 1e11 else float(raw)
        except OverflowError:  # an integer too large for a float
            t = math.inf
    elif isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError("bad-time", f"timestamp {raw!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise PayloadError("bad-time", f"timestamp {raw!r} has no time zone")
        t = dt.timestamp()
    else:
        raise PayloadError("bad-time", f"timestamp {raw!r} is not a time")
    # NaN, infinities and years outside 1..9999 would break incident ids and RFC 3339 times later.
    if not _MIN_TIME <= t < _MAX_TIME:
        raise PayloadError("bad-time", f"timestamp {raw!r} is out of range")
    return t


def _as_unit(raw: Any) -> str:
    unit = str(raw)[:32]
    try:
        # JSON's \\ud800 escapes decode to lone surrogates, which no event can carry as UTF-8.
        unit.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError("bad-unit", f"unit {unit!r} is not valid Unicode") from None
    return unit


def parse_payload(payload: bytes, point: MqttPoint, received: float) -> tuple[float, float, str | None]:
    """(value, time, unit) from one payload, or PayloadError saying what is wrong."""
    if point.value_path is None and point.time_path is None and point.unit_path is None:
        try:
            raw: Any = float(payload)
        except ValueError:
            raise PayloadError("not-a-number", f"payload {payload[:40]!r} is not a number") from None
        t, unit = received, point.unit
    else:
        try:
            # Decoding to str first skips json.loads' encoding sniffing on the hot path.
            doc = _decode_json(payload.decode("utf-8"))
        except (ValueError, RecursionError):  # RecursionError: '[[[[...' nested too deep
            raise PayloadError("bad-json", f"payload {payload[:40]!r} is not JSON") from None
        raw = _walk(doc, point.value_path) if point.value_path else doc
        t = _as_time(_walk(doc, point.time_path)) if point.time_path else received
        unit = _as_unit(_walk(doc, point.unit_path)) if point.unit_path else point.unit
    if isinstance(raw, bool):
        raw = float(raw)
    if not isinstance(raw, int | float):
        try:
            raw = float(raw)
        except (TypeError, ValueError):
            raise PayloadError("not-a-number", f"value {str(raw)[:40]!r} is not a number") from None
    try:
        value = float(raw) * point.scale + point.offset
    except OverflowError:  # a JSON integer too large for a float
        value = math.inf
    if not math.isfinite(value):
        raise PayloadError("not-finite", f"value {raw!r} is not finite")
    return value, t, unit


class _OneShotClient(gmqtt.Client):  # type: ignore[misc]
    """A gmqtt client that never reconnects by itself.

    ``reconnect_retries: 0`` still lets gmqtt make one attempt (it counts failures, and a reconnect
    that was already sleeping when the link dropped goes ahead anyway): that orphan came back with
    the driver's client id after a broker restart and took the session over from the supervisor's
    new client, which then took it back, again and again. Reconnecting is the supervisor's job.
    """

    async def reconnect(self, delay: bool = False) -> None:  # gmqtt calls it with delay=True
        with contextlib.suppress(Exception):  # the socket is already gone
            await self._disconnect()


class _ClosedBeforeConnack(Exception):
    """The broker dropped the connection before accepting it."""


async def _unless_lost(aw: Awaitable[None], lost: asyncio.Event) -> None:
    """Await a connect, unless the connection drops first.

    gmqtt goes on waiting for a CONNACK on a connection the broker has closed (a TLS broker that
    wants a client certificate does that right after the handshake), until the timeout.
    """
    connecting = asyncio.ensure_future(aw)
    dropped = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({connecting, dropped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        dropped.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    if connecting.cancelled():
        raise _ClosedBeforeConnack
    connecting.result()


class MqttDriver:
    """All MQTT terminals behind one broker."""

    def __init__(
        self,
        broker: MqttBroker,
        devices: list[MqttDevice],
        *,
        client_id: str,
        password: str | None,
        on_malformed: Callable[[str], None],
        base_dir: Path = Path(),
    ) -> None:
        self._broker = broker
        self._base_dir = base_dir
        self._client_id = client_id
        self._password = password
        self._on_malformed = on_malformed
        self._routes: list[tuple[str, str, MqttPoint]] = [(p.topic, d.id, p) for d in devices for p in d.points]
        self._exact: dict[str, list[tuple[str, MqttPoint]]] = {}
        self._wild: list[tuple[str, str, MqttPoint]] = []
        for topic, dev, p in self._routes:
            if "+" in topic or "#" in topic:
                self._wild.append((topic, dev, p))
            else:
                self._exact.setdefault(topic, []).append((dev, p))
        self._cache: dict[str, list[tuple[str, MqttPoint]]] = {}
        self._cache_bytes = 0
        self._badlog = RateLimitedLogger(log)
        self._sink: ReadingSink | None = None

    @property
    def name(self) -> str:
        return f"mqtt:{self._broker.id}"

    @property
    def filters(self) -> list[str]:
        return sorted({t for t, _d, _p in self._routes})

    def _route(self, topic: str) -> list[tuple[str, MqttPoint]]:
        hit = self._cache.get(topic)
        if hit is None:
            hit = list(self._exact.get(topic, ()))
            hit += [(dev, p) for pat, dev, p in self._wild if topic_matches(pat, topic)]
            if len(topic) > _ROUTE_CACHE_MAX_TOPIC:
                return hit
            size = len(topic) + _ROUTE_CACHE_ENTRY_BYTES
            if len(self._cache) >= _ROUTE_CACHE_MAX or self._cache_bytes + size > _ROUTE_CACHE_MAX_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            self._cache[topic] = hit
            self._cache_bytes += size
        return hit

    def handle(self, topic: str, payload: bytes, received: float) -> None:
        """Turn one message into readings (public so benchmarks can drive it without a socket)."""
        sink = self._sink
        assert sink is not None
        if len(payload) > self._broker.max_payload_bytes:
            self._bad(topic, "oversized", f"{len(payload)} bytes > max_payload_bytes {self._broker.max_payload_bytes}")
            return
        for dev, point in self._route(topic):
            try:
                value, t, unit = parse_payload(payload, point, received)
            except PayloadError as exc:
                self._bad(topic, exc.reason, str(exc))
                continue
            sink(Reading(dev, point.name, value, t, unit, Quality.GOOD))

    def _bad(self, topic: str, reason: str, detail: str) -> None:
        self._on_malformed(reason)
        # Keyed by reason, not topic: a device inventing topics under a wildcard must not grow it.
        self._badlog.warning(reason, "%s: dropped payload on %s: %s", self.name, topic, detail)

    async def run(self, sink: ReadingSink, on_connected: Callable[[], None]) -> None:
        self._sink = sink
        b = self._broker
        # Built on every connection, so a CA file fixed on disk is picked up by the next retry.
        tls = None if b.tls is None else client_context(b.tls, self._base_dir, link=self.name)
        client = _OneShotClient(self._client_id, clean_session=True)
        client.set_config({"reconnect_retries": 0})
        if b.username:
            client.set_auth_credentials(b.username, self._password)
        lost = asyncio.Event()
        subscribed = asyncio.Event()
        pending: set[int] = set()

        def on_message(_c: Any, topic: str, payload: bytes, _qos: int, _props: Any) -> int:
            self.handle(topic, payload, time.time())
            return 0

        def on_subscribe(_c: Any, mid: int, _qos: Any, _props: Any) -> None:
            pending.discard(mid)
            if not pending:
                subscribed.set()

        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.on_disconnect = lambda *_a: lost.set()
        try:
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await _unless_lost(
                        client.connect(b.host, b.port, ssl=tls or False, keepalive=b.keepalive_s, version=MQTTv311),
                        lost,
                    )
                    client.stop_reconnect()
                    for topic in self.filters:
                        pending.add(client.subscribe(topic, qos=b.qos))
                    if pending:
                        await subscribed.wait()
            except _ClosedBeforeConnack:
                hint = ""
                if b.tls is not None and b.tls.client_cert is None:
                    hint = "; a TLS broker does this when it wants a client certificate (tls.client_cert)"
                raise DriverConnectError(
                    f"broker {b.host}:{b.port} closed the connection before accepting it{hint}",
                    device_id=self.name,
                    code="closed",
                ) from None
            except ssl.SSLError as exc:
                raise DriverConnectError(
                    f"broker {b.host}:{b.port}: {tls_failure(exc)}", device_id=self.name, code="tls"
                ) from None
            except (OSError, TimeoutError) as exc:
                raise DriverConnectError(
                    f"cannot reach broker {b.host}:{b.port}: {type(exc).__name__} {exc}",
                    device_id=self.name,
                    code="connect",
                ) from None
            except Exception as exc:  # gmqtt raises its own refusal types and bare Exceptions
                raise DriverConnectError(
                    f"broker {b.host}:{b.port} refused the connection: {exc}", device_id=self.name, code="refused"
                ) from None
            log.info("%s: connected to %s:%d, %d subscriptions", self.name, b.host, b.port, len(self.filters))
            on_connected()
            await lost.wait()
            raise DriverConnectError(f"connection to {b.host}:{b.port} lost", device_id=self.name, code="lost")
        finally:
            # Always, connected or not: disconnect() is what marks the client inactive, and a client
            # left active keeps its socket and timers (an FD and a task per broker restart).
            try:
                async with asyncio.timeout(1.0):
                    await client.disconnect()
            except Exception:  # already gone: nothing left to tidy
                log.debug("%s: disconnect failed", self.name, exc_info=True)
