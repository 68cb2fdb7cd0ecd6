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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp
from amqtt.client import MQTTClient
from amqtt.errors import ClientError as AmqttClientError

from drivers.tls import client_context, tls_failure, tls_files
from edge_config.tls import TlsSettings
from edge_core.errors import DriverConnectError, DriverProtocolError, LinkHalted
from gateway.metrics import Metrics
from gateway.outbox import Outbox

__all__ = ["SIGNATURE_HEADER", "MqttPusher", "WebhookPusher", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
_BATCH = 200
# 4xx answers mean "not like this": the same request will be refused again until someone changes
# the receiver, the URL, the credentials or the event. Only these two ask us to come back later.
_TRY_LATER = frozenset({408, 429})
REFUSALS_BEFORE_HALT = 5
"""Refusals of the same event in a row after which the webhook stops trying (events are kept)."""


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _CursorPusher:
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
            events = await asyncio.to_thread(self._outbox.read_after, cursor, _BATCH)
            if not events:
                await self._outbox.wait_committed(self._outbox.committed_seq, 30.0)
                continue
            for ev in events:
                await self._deliver(ev.seq, ev.body)
                self._outbox.set_cursor(self.consumer, ev.seq)
                self._metrics.delivered.labels(self.consumer).inc()


class WebhookPusher(_CursorPusher):
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


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under a library's own (amqtt wraps the handshake's error in ConnectError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class MqttPusher(_CursorPusher):
    """Publishes each event (the same JSON as the feed) with QoS 1 to '<prefix>/<box_id>/<category>'.

    amqtt's client is used here because its publish() returns only after the broker's PUBACK,
    which is what lets the cursor advance safely.
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
        auth = f"{quote(username, safe='')}:{quote(password or '', safe='')}@" if username else ""
        self._uri = f"{'mqtt' if tls is None else 'mqtts'}://{auth}{host}:{port}/"
        self._where = f"{host}:{port}"
        self._tls = tls
        self._base_dir = base_dir
        self._prefix = f"{topic_prefix.rstrip('/')}/{box_id}"
        self._client_id = client_id
        self._client: MQTTClient | None = None

    async def run(self, on_connected: Callable[[], None]) -> None:
        config: dict[str, object] = {"auto_reconnect": False}
        cafile = None
        if self._tls is not None:
            # amqtt builds its own context from file names; building ours first checks the files
            # and gives the same errors as the other links.
            client_context(self._tls, self._base_dir, link=self.name)
            files = tls_files(self._tls, self._base_dir)
            cafile = None if files.ca_file is None else str(files.ca_file)
            if files.client_cert is not None and files.client_key is not None:
                config["connection"] = {"certfile": str(files.client_cert), "keyfile": str(files.client_key)}
        client = MQTTClient(client_id=self._client_id, config=config)
        try:
            # Passed to connect(), the CA file replaces the system's CAs instead of adding to them.
            await client.connect(self._uri, cafile=cafile)
        except (AmqttClientError, OSError) as exc:
            self._metrics.delivery_failures.labels(self.consumer).inc()
            tls_exc = _ssl_cause(exc)
            why = type(exc).__name__ if tls_exc is None else tls_failure(tls_exc)
            raise DriverConnectError(
                f"uplink broker {self._where} unreachable: {why}",
                device_id=self.name,
                code="connect" if tls_exc is None else "tls",
            ) from None
        self._client = client
        try:
            await self._pump(on_connected)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _deliver(self, seq: int, body: bytes) -> None:
        assert self._client is not None
        category = json.loads(body).get("category", "incident")
        try:
            async with asyncio.timeout(30):
                await self._client.publish(f"{self._prefix}/{category}", body, qos=1)
        except (AmqttClientError, OSError, TimeoutError) as exc:
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"uplink publish of seq {seq} failed: {type(exc).__name__}", device_id=self.name, code="publish"
            ) from None
