"""Push delivery into a NATS JetStream cluster: one publish per event, acknowledged by the stream.

Each committed event goes, in outbox order and one at a time, to
``<prefix>.<township>.<box_id>.<category>``, with its CloudEvent id as ``Nats-Msg-Id`` and its
outbox sequence as ``Edge-Seq``. The cursor moves only after the stream's acknowledgement, which
JetStream gives once the message is stored on a quorum of the stream's replicas. Exactly once:

- A publish whose acknowledgement was lost (a leader died in between) is sent again with the same
  message id; within the stream's de-duplication window the stream drops the copy and says so.
- A box that was down longer than that window (SIGKILLed with the last cursor move not yet
  committed, then off for a night) would send the last event again after the window closed; so
  each connection first asks the stream for the last message it holds from this box and, when
  its message id matches the local event at that ``Edge-Seq``, moves the cursor up to it. A box
  whose outbox was reset (a new disk) finds no match and skips nothing.
- One event in flight at a time keeps per-source (indeed per-box) order: event n+1 is only
  published once n is stored.

Reconnects are the supervisor's: nats-py's own reconnect is off, a dropped connection fails the
link, and the link comes back through :class:`edge_core.backoff.Backoff` (capped, full jitter), so
that a county-wide cluster restart does not bring every box back in the same second. While the
connection holds, a publish that times out or finds no stream leader (an election after a node
died) is retried in place with its own backoff, without tearing the connection down.

Presence: with a bucket configured, the box keeps ``<township>.<box_id>`` in that key-value bucket
as ``{"state": "online", ...}``, refreshed every ``heartbeat_s``, and writes ``offline`` on a
clean stop. A box that dies cannot say so; the platform reads a record older than three
heartbeats as dark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext

from drivers.tls import client_context, tls_failure
from edge_config.nats import NatsUplink
from edge_config.tls import TlsSettings
from edge_core.backoff import Backoff
from edge_core.errors import DriverConnectError, DriverError, DriverProtocolError
from edge_core.ratelimit import RateLimitedLogger
from edge_core.tasks import raise_if_cancelled
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.upstream import CursorPusher

__all__ = ["SEQ_HEADER", "NatsPusher", "nats_subject_prefix"]

log = logging.getLogger(__name__)

SEQ_HEADER = "Edge-Seq"
"""Header carrying the event's outbox sequence (the same number as the CloudEvent's ``sequence``)."""
_MSG_ID = "Nats-Msg-Id"
# JetStream's "wrong expected stream" code: the subject is captured by some other stream.
_WRONG_STREAM = 10060
# Retrying one publish in place (an election takes a few seconds): short waits, short cap.
_RETRY_BASE_S, _RETRY_MAX_S = 0.1, 2.0
_CONNECT_S = 3.0
_CLOSE_S = 3.0


def nats_subject_prefix(cfg: NatsUplink, township: str, box_id: str) -> str:
    """'<prefix>.<township>.<box_id>': the subjects one box publishes under (a category follows)."""
    return f"{cfg.subject_prefix}.{cfg.township or township}.{box_id}"


class NatsPusher(CursorPusher):
    """Delivers committed events after the ``nats`` cursor into a JetStream stream."""

    name = "upstream:nats"
    consumer = "nats"

    def __init__(
        self,
        outbox: Outbox,
        metrics: Metrics,
        cfg: NatsUplink,
        *,
        township: str,
        box_id: str,
        password: str | None,
        nkey_seed: str | None,
        base_dir: Path = Path(),
    ) -> None:
        super().__init__(outbox, metrics)
        self._js: JetStreamContext | None = None
        self._cfg = cfg
        self._subject = nats_subject_prefix(cfg, township, box_id)
        self._presence_key = f"{cfg.township or township}.{box_id}"
        self._box_id = box_id
        self._password = password
        self._nkey_seed = nkey_seed
        self._base_dir = base_dir
        # Seeds first, then what the cluster told us about itself on earlier connections.
        self._learnt: list[str] = []
        self._slow = RateLimitedLogger(log, 30.0)
        self._since = time.time()

    async def run(self, on_connected: Callable[[], None]) -> None:
        me = asyncio.current_task()
        base = 0 if me is None else me.cancelling()
        lost = asyncio.Event()
        nc = await self._connect(lost)
        js = self._js = nc.jetstream(timeout=self._cfg.ack_timeout_s)
        try:
            raise_if_cancelled(base)
            try:
                async with asyncio.timeout(self._cfg.ack_timeout_s * 2):
                    await self._resume(js)
            except TimeoutError:
                # Only a shortcut (see the module doc): the de-duplication window still covers us.
                log.warning("%s: the stream did not say what it holds from this box in time", self.name)
            raise_if_cancelled(base)  # before the TaskGroup, which may raise the count itself
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(on_connected), name=f"gw[{self.name}].pump")
                tg.create_task(self._watch(nc, lost), name=f"gw[{self.name}].watch")
                if self._cfg.presence_bucket is not None:
                    tg.create_task(self._presence(js), name=f"gw[{self.name}].presence")
        except BaseExceptionGroup as group:
            # The first field error is the link's error; anything else (a bug) keeps its traceback.
            first = next((e for e in group.exceptions if isinstance(e, DriverError)), None)
            if first is None:
                raise
            raise first from None
        finally:
            self._learn(nc)
            await self._say_offline(js, nc)
            # Bounded: closing a connection whose peer was SIGKILLed can wait on a socket for ever.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_S):
                    await nc.close()

    async def _watch(self, nc: NatsClient, lost: asyncio.Event) -> None:
        """Fail the link when the connection drops, also while no event is waiting to go."""
        where = _where(nc)
        await lost.wait()
        self._metrics.delivery_failures.labels(self.consumer).inc()
        raise DriverConnectError(f"NATS connection to {where} lost", device_id=self.name, code="connect")

    # -- connection ------------------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        tls = self._cfg.tls
        if tls is None and any(s.startswith("tls://") for s in self._cfg.servers):
            tls = TlsSettings()  # tls:// with no table: the system's CAs, host name verified
        return None if tls is None else client_context(tls, self._base_dir, link=self.name)

    async def _connect(self, lost: asyncio.Event) -> NatsClient:
        """One server at a time, seeds in random order then learnt ones: the first that answers."""
        ctx = self._tls()

        async def gone() -> None:
            lost.set()

        seeds = list(self._cfg.servers)
        random.shuffle(seeds)
        candidates = seeds + [s for s in self._learnt if s not in seeds]
        why: list[str] = []
        for server in candidates:
            options: dict[str, Any] = {
                "servers": [server],
                "allow_reconnect": False,
                "connect_timeout": _CONNECT_S,
                "name": f"edge-{self._box_id}",
                "error_cb": _quiet,
                "disconnected_cb": gone,
                "closed_cb": gone,
            }
            if ctx is not None:
                options["tls"] = ctx
                options["tls_hostname"] = None
            if self._cfg.user is not None:
                options["user"], options["password"] = self._cfg.user, self._password or ""
            if self._nkey_seed is not None:
                options["nkeys_seed_str"] = self._nkey_seed
            try:
                async with asyncio.timeout(_CONNECT_S * 2 + 1):
                    nc = await nats.connect(**options)
            except ssl.SSLError as exc:
                raise DriverConnectError(
                    f"NATS {server}: {tls_failure(exc)}", device_id=self.name, code="tls"
                ) from None
            except nats.errors.Error as exc:
                if _is_auth(exc):
                    raise DriverConnectError(
                        f"NATS {server} refused the login: check user/password or the NKey seed",
                        device_id=self.name,
                        code="auth",
                    ) from None
                why.append(f"{server}: {type(exc).__name__}")
            except (OSError, TimeoutError) as exc:
                why.append(
                    f"{server}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__}"
                )
            else:
                lost.clear()  # a refused seed before this one may have fired the callbacks
                return nc
        self._metrics.delivery_failures.labels(self.consumer).inc()
        raise DriverConnectError(f"no NATS server answered ({'; '.join(why)})", device_id=self.name, code="connect")

    def _learn(self, nc: NatsClient) -> None:
        with contextlib.suppress(Exception):
            scheme = "tls" if self._tls_wanted() else "nats"
            found = [f"{scheme}://{u.hostname}:{u.port}" for u in nc.discovered_servers if u.hostname]
            self._learnt = [s for s in found if s not in self._cfg.servers][:32]

    def _tls_wanted(self) -> bool:
        return self._cfg.tls is not None or any(s.startswith("tls://") for s in self._cfg.servers)

    # -- delivery --------------------------------------------------------------------------------

    async def _resume(self, js: JetStreamContext) -> None:
        """Move the cursor past what the stream already holds from this box (see the module doc)."""
        cursor = self._outbox.cursor(self.consumer)
        try:
            last = await js.get_last_msg(self._cfg.stream, f"{self._subject}.>")
        except nats.js.errors.NotFoundError:
            return  # nothing from this box (or all of it aged out): start from the cursor
        except (nats.errors.Error, TimeoutError) as exc:
            # Only a shortcut: without it the de-duplication window still covers a quick restart.
            log.warning("%s: could not read the stream's last event from this box: %s", self.name, exc)
            return
        headers = last.headers or {}
        try:
            held = int(headers.get(SEQ_HEADER, "0"))
        except ValueError:
            return
        if held <= cursor:
            return
        local = await asyncio.to_thread(self._outbox.read_after, held - 1, 1)
        if not local or local[0].seq != held or _event_id(local[0].body) != headers.get(_MSG_ID):
            log.warning(
                "%s: the stream holds seq %d from this box but not this box's event there (outbox reset?): "
                "sending from seq %d",
                self.name,
                held,
                cursor + 1,
            )
            return
        log.info("%s: the stream already holds up to seq %d; cursor %d moves there", self.name, held, cursor)
        self._outbox.set_cursor(self.consumer, held)

    def _after_store(self) -> None:
        raise_if_cancelled()

    async def _deliver(self, seq: int, body: bytes) -> None:
        js = self._js
        assert js is not None, "run() connects before the pump delivers"
        event = json.loads(body)
        subject = f"{self._subject}.{event.get('category') or 'incident'}"
        headers = {_MSG_ID: str(event["id"]), SEQ_HEADER: str(seq)}
        retry = Backoff(_RETRY_BASE_S, _RETRY_MAX_S)
        while True:
            try:
                ack = await js.publish(subject, body, stream=self._cfg.stream, headers=dict(headers))
            except nats.errors.ConnectionClosedError:
                raise_if_cancelled()
                raise DriverConnectError(
                    f"NATS connection closed while publishing seq {seq}", device_id=self.name, code="connect"
                ) from None
            except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError, TimeoutError) as exc:
                # A leader election, or a node gone with our request: the same message id again.
                self._metrics.delivery_failures.labels(self.consumer).inc()
                self._slow.warning("publish", "%s: publish of seq %d: %s; retrying", self.name, seq, type(exc).__name__)
                raise_if_cancelled()
                await asyncio.sleep(retry.next_delay())
                continue
            except nats.js.errors.APIError as exc:
                self._metrics.delivery_failures.labels(self.consumer).inc()
                if exc.err_code == _WRONG_STREAM:
                    raise DriverProtocolError(
                        f"subject {subject} is not captured by stream {self._cfg.stream}: "
                        "create the stream with that subject (examples/county_consumer.py --create) "
                        "or fix upstream.nats.stream",
                        device_id=self.name,
                        code="stream",
                    ) from None
                if exc.code == 503:
                    # JetStream temporarily unavailable (no quorum yet): wait, like a timeout.
                    self._slow.warning(
                        "publish", "%s: publish of seq %d: %s; retrying", self.name, seq, exc.description
                    )
                    await asyncio.sleep(retry.next_delay())
                    continue
                raise DriverConnectError(
                    f"stream refused seq {seq}: {exc.description}", device_id=self.name, code="publish"
                ) from None
            if ack.duplicate:
                # Stored before, its ack lost: the stream's de-duplication did its job.
                log.info("%s: seq %d was already in the stream (de-duplicated)", self.name, seq)
            return

    # -- presence --------------------------------------------------------------------------------

    def _presence_record(self, state: str) -> bytes:
        return json.dumps(
            {
                "state": state,
                "box_id": self._box_id,
                "since": self._since,
                "at": time.time(),
                "heartbeat_s": self._cfg.heartbeat_s,
                "cursor": self._outbox.cursor(self.consumer),
                "committed": self._outbox.committed_seq,
            }
        ).encode()

    async def _presence(self, js: JetStreamContext) -> None:
        assert self._cfg.presence_bucket is not None
        try:
            kv = await js.key_value(self._cfg.presence_bucket)
        except (nats.errors.Error, TimeoutError) as exc:
            # Presence is for the platform's map; events must flow without it.
            log.warning(
                "%s: presence bucket %r unavailable (%s): create it on the platform side "
                "(examples/county_consumer.py --create); events still flow",
                self.name,
                self._cfg.presence_bucket,
                type(exc).__name__,
            )
            return
        while True:
            # A missed beat (an election in the bucket's own group) is made up by the next one.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await kv.put(self._presence_key, self._presence_record("online"))
            raise_if_cancelled()
            await asyncio.sleep(self._cfg.heartbeat_s)

    async def _say_offline(self, js: JetStreamContext, nc: NatsClient) -> None:
        if self._cfg.presence_bucket is None or not nc.is_connected:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                kv = await js.key_value(self._cfg.presence_bucket)
                await kv.put(self._presence_key, self._presence_record("offline"))


def _event_id(body: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        ident = json.loads(body).get("id")
        return None if ident is None else str(ident)
    return None


def _is_auth(exc: BaseException) -> bool:
    return "authorization" in str(exc).lower() or isinstance(exc, nats.errors.AuthorizationError)


def _where(nc: NatsClient) -> str:
    url = nc.connected_url
    return "the cluster" if url is None else f"{url.hostname}:{url.port}"


async def _quiet(_exc: Exception) -> None:
    """nats-py logs every error itself unless given a callback; the link's own error says it once."""
