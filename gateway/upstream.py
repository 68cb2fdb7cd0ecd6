"""Push delivery: the platform's webhook and MQTT broker, fed from the outbox in sequence order.

One request per event in the CloudEvents HTTP binding, structured mode, signed with HMAC-SHA256.
Sending in sequence order from one task keeps order per source. The cursor is advanced (durably,
with the next group commit) only after a 2xx, so delivery is at least once: after a crash the
platform may see an event again, with the same CloudEvents id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import gmqtt
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.storage import PersistentStorage

from drivers.tls import client_context, tls_failure
from edge_config.tls import TlsSettings
from edge_core.errors import DriverConnectError, DriverProtocolError, LinkHalted
from gateway.metrics import Metrics
from gateway.outbox import Outbox

__all__ = ["SIGNATURE_HEADER", "CursorPusher", "MqttPusher", "WebhookPusher", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
_BATCH = 200
# 4xx answers mean "not like this": the same request will be refused again until someone changes
# the receiver, the URL, the credentials or the event. Only these two ask us to come back later.
_TRY_LATER = frozenset({408, 429})
REFUSALS_BEFORE_HALT = 5
"""Refusals of the same event in a row after which the webhook stops trying (events are kept)."""
_MQTT_CONNECT_S = 10.0


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class CursorPusher:
    """Delivers committed events after this channel's durable cursor, one at a time, in order.

    A delivery failure raises DriverError; the supervisor backs off and restarts the loop, which
    resumes from the cursor, so nothing is skipped and nothing is lost.
    """

    name: str
    consumer: str

    def __init__(self, outbox: Outbox, metrics: Metrics) -> None:
        self._outbox = outbox
        self._metrics = metrics

    async def _deliver(self, seq: int, body: bytes) -> None:
        raise NotImplementedError

    async def _pump(self, on_connected: Callable[[], None]) -> None:
        on_connected()
        while True:
            cursor = self._outbox.cursor(self.consumer)
            # Taken before the read: a commit landing while the read runs in its thread must wake
            # the wait below, not be waited past (for the 30 s timeout).
            seen = self._outbox.committed_seq
            events = await asyncio.to_thread(self._outbox.read_after, cursor, _BATCH)
            if not events:
                await self._outbox.wait_committed(seen, 30.0)
                continue
            for ev in events:
                await self._deliver(ev.seq, ev.body)
                self._outbox.set_cursor(self.consumer, ev.seq)  # stored: kept even if cancelled now
                self._after_store()
                self._metrics.delivered.labels(self.consumer).inc()

    def _after_store(self) -> None:
        """Called once an event's cursor is stored; a channel whose client can swallow a
        cancellation acts on it here."""


class WebhookPusher(CursorPusher):
    """CloudEvents HTTP binding, structured mode, one POST per event, HMAC-signed."""

    name = "upstream:webhook"
    consumer = "webhook"

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        secret: bytes | None,
        timeout_s: float,
        metrics: Metrics,
        *,
        tls: TlsSettings | None = None,
        base_dir: Path = Path(),
    ) -> None:
        super().__init__(outbox, metrics)
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._tls = tls
        self._base_dir = base_dir
        self._session: aiohttp.ClientSession | None = None
        # (seq, refusals of it in a row): a refused event is never skipped, it is retried with
        # backoff, and after REFUSALS_BEFORE_HALT the link halts until an operator acts.
        self._refused: tuple[int, int] = (0, 0)

    async def run(self, on_connected: Callable[[], None]) -> None:
        # None keeps aiohttp's default: verify against the system's CAs.
        ctx = None if self._tls is None else client_context(self._tls, self._base_dir, link=self.name)
        connector = aiohttp.TCPConnector(ssl=ctx if ctx is not None else True)
        async with aiohttp.ClientSession(timeout=self._timeout, connector=connector) as session:
            self._session = session
            await self._pump(on_connected)

    async def _deliver(self, seq: int, body: bytes) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            # No redirects: aiohttp would follow a 301/302 as a bodiless GET, and the 2xx at its
            # end would mark an event delivered that nobody received.
            async with self._session.post(self._url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                status = resp.status
                location = resp.headers.get("Location", "")
        except aiohttp.ClientConnectorCertificateError as exc:
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"webhook: {tls_failure(exc.certificate_error)}", device_id=self.name, code="tls"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"webhook unreachable: {type(exc).__name__}: {exc}", device_id=self.name, code="connect"
            ) from None
        if 200 <= status < 300:
            self._refused = (0, 0)
            return
        self._metrics.delivery_failures.labels(self.consumer).inc()
        if 300 <= status < 400:
            raise DriverProtocolError(
                f"webhook answered HTTP {status}, a redirect to {location[:200]!r}: a redirected POST is not "
                "delivered; set upstream.webhook.url to the address it redirects to",
                device_id=self.name,
                code="redirect",
            )
        if 400 <= status < 500 and status not in _TRY_LATER:
            self._refuse(seq, status)
        raise DriverConnectError(f"webhook answered HTTP {status}", device_id=self.name, code=f"http-{status}")

    def _refuse(self, seq: int, status: int) -> None:
        """Count a refusal of ``seq`` (the event stays undelivered) and halt after too many."""
        last, n = self._refused
        n = n + 1 if last == seq else 1
        self._refused = (seq, n)
        if n < REFUSALS_BEFORE_HALT:
            raise DriverProtocolError(
                f"receiver refused event seq {seq} with HTTP {status} ({n} of {REFUSALS_BEFORE_HALT} before "
                "the webhook stops); the event is kept",
                device_id=self.name,
                code=f"http-{status}",
            )
        self._refused = (0, 0)
        raise LinkHalted(
            f"receiver refused event seq {seq} with HTTP {status} {n} times in a row: webhook delivery stopped, "
            f"all events kept. Fix the receiver and reload (systemctl reload edge-gateway), or skip the event: "
            f"edge-gateway outbox skip --consumer {self.consumer} --seq {seq}",
            device_id=self.name,
            code=f"http-{status}",
        )


class MqttPusher(CursorPusher):
    """Publishes each event (the same JSON as the feed) with QoS 1 to '<prefix>/<box_id>/<category>'.

    gmqtt, the drivers' client, both ways. Its publish() only queues the packet; with one publish
    in flight at a time, the client's in-flight store running empty is the broker's PUBACK, and
    only then does the cursor move. The session is persistent (clean_session off, a stable client
    id), so a broker that keeps sessions holds the box's place across a reconnect.

    Presence on '<prefix>/<box_id>/status', retained: 'online' (the birth) after each connect,
    'offline' before a clean disconnect, and the same 'offline' as the will, which the broker
    publishes when the box drops without a word.
    """

    name = "upstream:mqtt"
    consumer = "mqtt"

    def __init__(
        self,
        outbox: Outbox,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        topic_prefix: str,
        box_id: str,
        client_id: str,
        username: str | None,
        password: str | None,
        tls: TlsSettings | None = None,
        base_dir: Path = Path(),
    ) -> None:
        super().__init__(outbox, metrics)
        self._host, self._port = host, port
        self._where = f"{host}:{port}"
        self._tls = tls
        self._base_dir = base_dir
        self._prefix = f"{topic_prefix.rstrip('/')}/{box_id}"
        self._box_id = box_id
        self._client_id = client_id
        self._username, self._password = username, password
        self._client: gmqtt.Client | None = None
        self._inflight: PersistentStorage | None = None
        self._lost = asyncio.Event()

    @property
    def status_topic(self) -> str:
        return f"{self._prefix}/status"

    def _status(self, state: str) -> bytes:
        return json.dumps({"state": state, "box_id": self._box_id, "at": time.time()}).encode()

    async def run(self, on_connected: Callable[[], None]) -> None:
        # Built on every connection, so a CA file fixed on disk is picked up by the next retry.
        ctx = None if self._tls is None else client_context(self._tls, self._base_dir, link=self.name)
        will = gmqtt.Message(self.status_topic, self._status("offline"), qos=1, retain=True)
        self._inflight = PersistentStorage()
        client = gmqtt.Client(
            self._client_id, clean_session=False, will_message=will, persistent_storage=self._inflight
        )
        client.set_config({"reconnect_retries": 0})
        if self._username:
            client.set_auth_credentials(self._username, self._password)
        self._lost = lost = asyncio.Event()
        client.on_disconnect = lambda *_a: lost.set()
        try:
            async with asyncio.timeout(_MQTT_CONNECT_S):
                await client.connect(self._host, self._port, ssl=ctx or False, version=MQTTv311)
                client.stop_reconnect()
        except ssl.SSLError as exc:
            await _close(client)
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"uplink broker {self._where}: {tls_failure(exc)}", device_id=self.name, code="tls"
            ) from None
        except Exception as exc:  # OSError, TimeoutError, and gmqtt's own refusals (bare Exceptions)
            await _close(client)
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"uplink broker {self._where} unreachable: {type(exc).__name__} {exc}".rstrip(),
                device_id=self.name,
                code="connect",
            ) from None
        self._client = client
        try:
            await self._publish_acked(self.status_topic, self._status("online"), retain=True, what="presence")
            await self._pump(on_connected)
        finally:
            if client.is_connected and not lost.is_set():
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await self._publish_acked(
                            self.status_topic, self._status("offline"), retain=True, what="presence"
                        )
            await _close(client)

    async def _publish_acked(self, topic: str, body: bytes, *, retain: bool = False, what: str) -> None:
        assert self._client is not None and self._inflight is not None
        if self._lost.is_set() or not self._client.is_connected:
            raise DriverConnectError(f"uplink broker {self._where}: connection lost", device_id=self.name, code="lost")
        self._client.publish(topic, body, qos=1, retain=retain)
        acked = asyncio.ensure_future(self._inflight.wait_empty())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({acked, lost}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            acked.cancel()
        if not acked.done() or acked.cancelled():
            self._metrics.delivery_failures.labels(self.consumer).inc()
            why = "connection lost" if self._lost.is_set() else "no PUBACK within 30 s"
            raise DriverConnectError(f"uplink publish of {what}: {why}", device_id=self.name, code="publish")

    async def _deliver(self, seq: int, body: bytes) -> None:
        category = json.loads(body).get("category", "incident")
        await self._publish_acked(f"{self._prefix}/{category}", body, what=f"seq {seq}")


async def _close(client: gmqtt.Client) -> None:
    """Stop this client for good, whatever state it is in.

    gmqtt reconnects on its own after a lost connection (once even with reconnect_retries 0), and
    a connect that timed out leaves its socket open: either would come back later with the same
    client id as the next attempt, and the broker would keep replacing one with the other
    (NATS's MQTT listener logs "Replacing old client"), so neither ever publishes.
    """
    client.stop_reconnect()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            await client.disconnect()
