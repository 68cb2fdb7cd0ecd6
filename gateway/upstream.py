"""Push delivery: the platform's webhook, fed from the outbox in sequence order.

One request per event in the CloudEvents HTTP binding, structured mode, signed with HMAC-SHA256.
Sending in sequence order from one task keeps order per source. The cursor is advanced (durably,
with the next group commit) only after a 2xx, so delivery is at least once: after a crash the
platform may see an event again, with the same CloudEvents id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable

import aiohttp

from gateway.errors import DriverConnectError
from gateway.metrics import Metrics
from gateway.outbox import Outbox

__all__ = ["SIGNATURE_HEADER", "WebhookPusher", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
_BATCH = 200
# Answers that retrying cannot fix: the event itself is refused. Auth and routing errors
# (401, 403, 404) are not here: they are configuration trouble and must not lose events.
_REJECTED = frozenset({400, 409, 413, 415, 422})


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookPusher:
    name = "upstream:webhook"
    consumer = "webhook"

    def __init__(self, outbox: Outbox, url: str, secret: bytes | None, timeout_s: float, metrics: Metrics) -> None:
        self._outbox = outbox
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._metrics = metrics

    async def run(self, on_connected: Callable[[], None]) -> None:
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            announced = False
            while True:
                cursor = self._outbox.cursor(self.consumer)
                events = await asyncio.to_thread(self._outbox.read_after, cursor, _BATCH)
                if not events:
                    if not announced:
                        on_connected()
                        announced = True
                    await self._outbox.wait_committed(self._outbox.committed_seq, 30.0)
                    continue
                for ev in events:
                    await self._post(session, ev.seq, ev.body)
                    self._outbox.set_cursor(self.consumer, ev.seq)
                    self._metrics.delivered.labels(self.consumer).inc()
                    if not announced:
                        on_connected()
                        announced = True

    async def _post(self, session: aiohttp.ClientSession, seq: int, body: bytes) -> None:
        headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            async with session.post(self._url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._metrics.delivery_failures.labels(self.consumer).inc()
            raise DriverConnectError(
                f"webhook unreachable: {type(exc).__name__}: {exc}", device_id=self.name, code="connect"
            ) from None
        if 200 <= status < 300:
            return
        self._metrics.delivery_failures.labels(self.consumer).inc()
        if status in _REJECTED:
            log.error("%s: receiver refused event seq %d with HTTP %d; skipping it", self.name, seq, status)
            return
        raise DriverConnectError(f"webhook answered HTTP {status}", device_id=self.name, code=f"http-{status}")
