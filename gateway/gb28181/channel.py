"""The GB/T 28181 channel: the box as a lower-level platform (下级平台) of the county video platform.

One supervised link per ``[[upstream.gb28181]]`` table. A run connects, registers (digest), then
keeps four things going until one fails: the registration refresh, the keepalive, the answers to
the platform's requests, and the alarm pump. Any failure raises a :class:`DriverError`; the
supervisor waits (jittered backoff) and runs it again, which registers again. So an alarm whose
Notify was not acknowledged is sent again after the next registration, in outbox order.

Alarms come from the durable outbox with this channel's own cursor: the cursor passes an event
only once the platform has answered its Notify with a 2xx, or when the event is not an alarm.

Why this file is long: registration, keepalive, the alarm pump and the answers to the platform
share one transport, one CSeq counter and one table of pending transactions; what needs none of
that lives apart (``calls`` for INVITE dialogs, ``subscriptions``, ``mapping``, ``telemetry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from edge_config.gb28181 import Gb28181Settings
from edge_core.errors import DriverAuthError, DriverConnectError, DriverError, DriverProtocolError, DriverTimeoutError
from edge_core.ratelimit import RateLimitedLogger
from edge_core.tasks import TaskSet
from gateway.gb28181 import manscdp
from gateway.gb28181.calls import LiveCalls
from gateway.gb28181.live import VideoSource
from gateway.gb28181.mapping import ChannelStats, GbCamera, alarm_notice, clock_skew, consumer_of, respond
from gateway.gb28181.pending import PendingAlarms
from gateway.gb28181.sip import (
    REASONS,
    SipMessage,
    SipParseError,
    authorization,
    granted_expires,
    new_branch,
    new_tag,
    parse_challenge,
    reply,
)
from gateway.gb28181.subscriptions import Subscriptions
from gateway.gb28181.transport import SipTransport, StreamClosed, open_transport
from gateway.metrics import Metrics
from gateway.outbox import Outbox

__all__ = ["Gb28181Channel"]

log = logging.getLogger(__name__)

_BATCH = 200
_UNREGISTER_WAIT_S = 2.0
_ANSWERED_CACHE = 128
_ALLOW = "REGISTER, MESSAGE, INVITE, ACK, OPTIONS, BYE, SUBSCRIBE"
# Answers to a Notify that retrying cannot fix: the platform refuses the alarm itself. 403/404
# (the platform forgot our registration) are not here: registering again fixes those.
_REJECTED = frozenset({400, 413, 415, 488, 501})


class Gb28181Channel:
    """One registration with one platform, and everything that lives on it."""

    def __init__(
        self,
        cfg: Gb28181Settings,
        *,
        password: str,
        outbox: Outbox,
        metrics: Metrics,
        cameras: Sequence[GbCamera],
        camera_online: Callable[[str], bool],
        box_name: str,
        firmware: str,
        video: VideoSource | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = f"upstream:gb28181:{cfg.id}"
        self.consumer = consumer_of(cfg.id)
        self.stats = ChannelStats()
        self._password = password
        self._outbox = outbox
        self._metrics = metrics
        self._cameras = list(cameras)
        self._by_channel = {c.channel_id: c for c in self._cameras}
        self._channel_of = {c.device: c.channel_id for c in self._cameras}
        self._online = camera_online
        self._box_name = box_name
        self._firmware = firmware
        self._user = cfg.username or cfg.device_id
        self._rlog = RateLimitedLogger(log)
        self._t: SipTransport | None = None
        self._pending: dict[str, asyncio.Future[SipMessage]] = {}
        self._answered: OrderedDict[tuple[str, str], SipMessage] = OrderedDict()
        self._jobs = TaskSet()
        self._cseq = 0
        self._sn = 0
        self._reg_call_id = ""
        self._from_tag = new_tag()
        self._granted_s = float(cfg.register_expires_s)
        self._calls = LiveCalls(
            self.name,
            cfg.device_id,
            self._by_channel,
            video,
            cfg.max_live_sessions,
            self,
            allow_h265=cfg.version == "2022",
        )
        self._subs = Subscriptions(self.name, cfg, self, self._cameras, camera_online)
        self.pending = PendingAlarms(outbox, self.consumer, self._channel_of)

    # -- life --------------------------------------------------------------------------------

    async def run(self, on_connected: Callable[[], None]) -> None:
        """Connect, register, and serve until something fails (raises DriverError)."""
        cfg = self.cfg
        self._t = await open_transport(
            cfg.transport, self.name, cfg.host, cfg.port, cfg.local_port, cfg.request_timeout_s
        )
        self._reg_call_id = f"{new_tag()}{new_tag()}@{self._t.local_host}"
        receiver = asyncio.create_task(self._receive(), name=f"{self.name}.receive")
        try:
            await self._register(cfg.register_expires_s)
            on_connected()
            tasks = [
                asyncio.create_task(self._refresh(), name=f"{self.name}.refresh"),
                asyncio.create_task(self._keepalive(), name=f"{self.name}.keepalive"),
                asyncio.create_task(self._pump(), name=f"{self.name}.alarms"),
                asyncio.create_task(self._subs.watch(), name=f"{self.name}.subscriptions"),
            ]
            try:
                done, _ = await asyncio.wait([*tasks, receiver], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                raise DriverConnectError("channel stopped unexpectedly", device_id=self.name)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._jobs.cancel()
            self._calls.stop()
            self._subs.stop()
            if self.stats.registered:
                # Best effort, also on shutdown: the platform shows us offline at once instead
                # of after the registration times out.
                with contextlib.suppress(DriverError, TimeoutError):
                    async with asyncio.timeout(_UNREGISTER_WAIT_S):
                        await self._register(0)
            self.stats.registered = False
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            self._t.close()
            for fut in self._pending.values():
                fut.cancel()
            self._pending.clear()

    # -- requests we send --------------------------------------------------------------------

    def _request(self, method: str, uri: str, to: str, *, call_id: str | None = None) -> SipMessage:
        assert self._t is not None
        t, cfg = self._t, self.cfg
        self._cseq += 1
        msg = SipMessage(method=method, uri=uri)
        msg.headers = [
            ("Via", f"SIP/2.0/{t.proto} {t.local_host}:{t.local_port};rport;branch={new_branch()}"),
            ("From", f"<sip:{cfg.device_id}@{cfg.domain}>;tag={self._from_tag}"),
            ("To", to),
            ("Call-ID", call_id or f"{new_tag()}{new_tag()}@{t.local_host}"),
            ("CSeq", f"{self._cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", f"township-edge-gateway/{self._firmware}"),
            ("X-GB-Ver", "3.0" if cfg.version == "2022" else "2.0"),
        ]
        return msg

    async def send(self, msg: SipMessage) -> SipMessage | None:
        """Send a request and wait for its final response; None when none came in time.
        Over UDP the request is retransmitted (RFC 3261 timer A: 0.5 s doubling, capped at 4 s)."""
        assert self._t is not None
        t = self._t
        branch = msg.branch()
        assert branch is not None
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[branch] = fut
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.request_timeout_s
        interval = 0.5
        try:
            t.send(msg)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                wait = min(left, interval) if t.proto == "UDP" else left
                done, _ = await asyncio.wait({fut}, timeout=wait)
                if done:
                    return fut.result()
                if t.proto == "UDP":
                    t.send(msg)
                    interval = min(interval * 2, 4.0)
        finally:
            self._pending.pop(branch, None)

    # -- the seam LiveCalls uses (calls.Dialogs) ------------------------------------------------

    @property
    def local_ip(self) -> str:
        assert self._t is not None
        return self._t.local_host

    def in_dialog(self, method: str, invite: SipMessage) -> SipMessage:
        """A request of ours inside the dialog ``invite`` opened (we are its callee)."""
        contact = re.search(r"<([^>]+)>", invite.get("contact") or "")
        to = f"{invite.get('to')};tag={self._from_tag}"
        msg = self._request(method, contact.group(1) if contact else invite.uri, invite.get("from") or "")
        msg.set("From", to)
        msg.set("Call-ID", invite.get("call-id") or "")
        return msg

    @property
    def live_sessions(self) -> int:
        return self._calls.active

    async def _register(self, expires: int) -> None:
        cfg = self.cfg
        uri = f"sip:{cfg.platform_id}@{cfg.domain}"
        where = f"{cfg.host}:{cfg.port}/{cfg.transport}"

        def build(auth: str | None) -> SipMessage:
            assert self._t is not None
            msg = self._request("REGISTER", uri, f"<sip:{cfg.device_id}@{cfg.domain}>", call_id=self._reg_call_id)
            msg.headers += [
                ("Contact", f"<sip:{cfg.device_id}@{self._t.local_host}:{self._t.local_port}>"),
                ("Expires", str(expires)),
            ]
            if auth is not None:
                msg.headers.append(("Authorization", auth))
            return msg

        resp = await self.send(build(None))
        if resp is None:
            raise DriverTimeoutError(
                f"platform {where} did not answer REGISTER within {cfg.request_timeout_s:g} s",
                device_id=self.name,
                code="timeout",
            )
        if resp.status in (401, 407):
            header = resp.get("www-authenticate") or resp.get("proxy-authenticate") or ""
            try:
                ch = parse_challenge(header)
            except ValueError as exc:
                raise DriverProtocolError(f"platform's challenge: {exc}", device_id=self.name, code="auth") from None
            auth = authorization(ch, username=self._user, password=self._password, method="REGISTER", uri=uri)
            resp = await self.send(build(auth))
            if resp is None:
                raise DriverTimeoutError(
                    f"platform {where} did not answer the authenticated REGISTER", device_id=self.name, code="timeout"
                )
            if resp.status in (401, 407):
                raise DriverAuthError(
                    f"platform refused our digest ({resp.status} {resp.reason}): check the password and "
                    f"username {self._user}",
                    device_id=self.name,
                )
        if resp.status == 403:
            raise DriverAuthError(
                f"platform answered 403 {resp.reason}: wrong password, or device_id {cfg.device_id} is not "
                "registered on the platform",
                device_id=self.name,
                code="forbidden",
            )
        if not 200 <= resp.status < 300:
            raise DriverProtocolError(
                f"platform answered REGISTER with {resp.status} {resp.reason}", device_id=self.name, code="register"
            )
        if expires == 0:
            self.stats.registered = False
            log.info("%s: unregistered from %s", self.name, where)
            return
        self._granted_s = float(granted_expires(resp, expires))
        self.stats.registered, self.stats.keepalive_misses = True, 0
        self.stats.registrations += 1
        self.stats.last_register_at = time.time()
        self._check_clock(resp)
        log.info("%s: registered with %s for %.0f s", self.name, where, self._granted_s)

    def _check_clock(self, resp: SipMessage) -> None:
        date = resp.get("date")
        if date is None:
            return
        skew = clock_skew(date, time.time())
        self.stats.clock_skew_s = skew
        if skew is not None and abs(skew) > self.cfg.clock_skew_warn_s:
            log.warning(
                "%s: the platform's clock (Date: %s) is %+.1f s from ours: alarm times will disagree; "
                "check the box's NTP",
                self.name,
                date,
                skew,
            )

    async def _refresh(self) -> None:
        while True:
            # At 80 %: a lost refresh still has time for its retransmits before the platform
            # drops us.
            await asyncio.sleep(max(1.0, self._granted_s * 0.8))
            await self._register(self.cfg.register_expires_s)

    async def _message(self, body: bytes) -> SipMessage | None:
        cfg = self.cfg
        msg = self._request("MESSAGE", f"sip:{cfg.platform_id}@{cfg.domain}", f"<sip:{cfg.platform_id}@{cfg.domain}>")
        msg.headers.append(("Content-Type", manscdp.CONTENT_TYPE))
        msg.body = body
        return await self.send(msg)

    def _next_sn(self) -> int:
        self._sn += 1
        return self._sn

    async def _keepalive(self) -> None:
        cfg = self.cfg
        while True:
            await asyncio.sleep(cfg.keepalive_s)
            resp = await self._message(manscdp.keepalive(self._next_sn(), cfg.device_id, cfg.charset))
            if resp is not None and 200 <= resp.status < 300:
                self.stats.keepalive_misses = 0
                continue
            if resp is not None:
                # 404 and friends: the platform no longer knows us (it restarted): register now.
                self.stats.registered = False
                raise DriverConnectError(
                    f"platform answered a keepalive with {resp.status} {resp.reason}: registering again",
                    device_id=self.name,
                    code="keepalive",
                )
            self.stats.keepalive_misses += 1
            log.warning(
                "%s: keepalive unanswered (%d of %d)", self.name, self.stats.keepalive_misses, cfg.keepalive_misses
            )
            if self.stats.keepalive_misses >= cfg.keepalive_misses:
                self.stats.registered = False  # a dead platform: no point saying goodbye
                raise DriverTimeoutError(
                    f"{cfg.keepalive_misses} keepalives unanswered: registering again",
                    device_id=self.name,
                    code="keepalive",
                )

    # -- alarms --------------------------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            cursor = self._outbox.cursor(self.consumer)
            events = await asyncio.to_thread(self._outbox.read_after, cursor, _BATCH)
            if not events:
                await self._outbox.wait_committed(self._outbox.committed_seq, 30.0)
                continue
            for ev in events:
                notice = alarm_notice(ev.body, self._channel_of)
                if notice is not None:
                    await self._send_alarm(ev.seq, notice)
                self._outbox.set_cursor(self.consumer, ev.seq)

    async def _send_alarm(self, seq: int, notice: manscdp.AlarmNotice) -> None:
        body = manscdp.alarm(self._next_sn(), notice, self.cfg.charset)
        sub = self._subs.alarm_subscription()
        resp = await (self._message(body) if sub is None else self._subs.send_alarm(sub, body))
        if resp is not None and 200 <= resp.status < 300:
            self.stats.alarms_sent += 1
            self._metrics.delivered.labels(self.consumer).inc()
            return
        self._metrics.delivery_failures.labels(self.consumer).inc()
        if resp is None:
            raise DriverTimeoutError(
                f"alarm (outbox seq {seq}) not acknowledged: registering again", device_id=self.name, code="alarm"
            )
        if resp.status in _REJECTED:
            log.error(
                "%s: platform refused the alarm of outbox seq %d with %d; skipping it", self.name, seq, resp.status
            )
            return
        raise DriverConnectError(
            f"platform answered an alarm with {resp.status} {resp.reason}", device_id=self.name, code="alarm"
        )

    # -- requests we receive -------------------------------------------------------------------

    async def _receive(self) -> None:
        assert self._t is not None
        while True:
            item = await self._t.incoming.get()
            if isinstance(item, StreamClosed):
                self.stats.registered = False
                raise DriverConnectError(f"connection lost: {item}", device_id=self.name, code="connect")
            if isinstance(item, SipParseError):
                self._rlog.warning(_kind("sip", item), "%s: bad message from the platform: %s", self.name, item)
                if item.request is not None:
                    self.answer(item.request, item.status)
                continue
            if not item.is_request:
                branch = item.branch()
                fut = self._pending.get(branch or "")
                if fut is not None and not fut.done() and item.status >= 200:
                    fut.set_result(item)
                continue
            try:
                self._on_request(item)
            except Exception:  # one bad request must not take the registration down
                self._rlog.exception("request", "%s: failed to handle %s", self.name, item.method)
                self.answer(item, 500, "Server Internal Error")

    def answer(
        self,
        req: SipMessage,
        status: int,
        reason: str | None = None,
        *,
        warning: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer a request of the platform (remembered, so a retransmission gets the same)."""
        assert self._t is not None
        if req.method == "ACK":
            return  # never answered (RFC 3261 17.2.1)
        resp = reply(req, status, reason or REASONS.get(status, "Error"), to_tag=self._from_tag)
        resp.headers.append(("User-Agent", f"township-edge-gateway/{self._firmware}"))
        resp.headers += headers or []
        resp.body = body
        if status == 501:
            resp.headers.append(("Allow", _ALLOW))
        if status == 415:
            resp.headers.append(("Accept", manscdp.CONTENT_TYPE))
        if warning is not None:
            resp.headers.append(("Warning", f'399 {self.cfg.device_id} "{warning[:200]}"'))
        key = (req.get("call-id") or "", req.get("cseq") or "")
        self._answered[key] = resp
        while len(self._answered) > _ANSWERED_CACHE:
            self._answered.popitem(last=False)
        self._t.send(resp)

    def _on_request(self, req: SipMessage) -> None:
        assert self._t is not None
        key = (req.get("call-id") or "", req.get("cseq") or "")
        if key in self._answered:
            self._t.send(self._answered[key])  # a retransmission: the same answer again
            return
        match req.method:
            case "MESSAGE":
                self._on_message(req)
            case "INVITE":
                self._calls.on_invite(req)
            case "ACK":
                self._calls.on_ack(req)
            case "OPTIONS":
                self.answer(req, 200)
            case "BYE":
                if not self._calls.on_bye(req):
                    self.answer(req, 481)
            case "SUBSCRIBE":
                self._subs.on_subscribe(req)
            case _:
                self._rlog.warning(
                    f"method-{req.method}", "%s: %s is not supported; answered 501", self.name, req.method
                )
                self.answer(req, 501, warning=f"{req.method} is not supported")

    def _on_message(self, req: SipMessage) -> None:
        cfg = self.cfg
        ctype = (req.get("content-type") or "").lower()
        if "manscdp" not in ctype:
            self._rlog.warning("ctype", "%s: MESSAGE with Content-Type %r; answered 415", self.name, ctype)
            self.answer(req, 415)
            return
        try:
            q = manscdp.parse(req.body, cfg.charset)
        except manscdp.ManscdpError as exc:
            self._rlog.warning(
                _kind("xml", exc), "%s: unreadable MESSAGE body: %s; answered %d", self.name, exc, exc.status
            )
            self.answer(req, exc.status, warning=str(exc))
            return
        if q.root == "Response":
            self.answer(req, 200)
            return
        known = q.device_id == cfg.device_id or q.device_id in self._by_channel
        if q.root in ("Query", "Control") and not known:
            self._rlog.warning(
                "unknown", "%s: %s %s for unknown id %r; answered 404", self.name, q.root, q.cmd, q.device_id
            )
            self.answer(req, 404, warning=f"no device or channel {q.device_id}")
            return
        body = respond(q, cfg, self._cameras, self._online, box_name=self._box_name, firmware=self._firmware)
        if body is None:
            self._rlog.warning("cmd", "%s: %s %s is not supported; answered 501", self.name, q.root, q.cmd)
            self.answer(req, 501, warning=f"{q.root} {q.cmd} is not supported")
            return
        self.answer(req, 200)
        self._jobs.spawn(self._send_all(q.cmd, body), name=f"{self.name}.response.{q.cmd}")

    async def _send_all(self, cmd: str, bodies: list[bytes]) -> None:
        """Send a response's MESSAGEs one after another, each once acknowledged."""
        for i, body in enumerate(bodies, 1):
            resp = await self._message(body)
            if resp is None or not 200 <= resp.status < 300:
                what = "no answer" if resp is None else f"{resp.status} {resp.reason}"
                self._rlog.warning("resp", "%s: %s response %d/%d: %s", self.name, cmd, i, len(bodies), what)
                return


_VARIABLE = re.compile(r"""'[^']*'|"[^"]*"|<[^>]*>|[0-9]+""")


def _kind(layer: str, exc: Exception) -> str:
    """The rate limiter's key of an error: its message without numbers, quoted text or tags, so
    each kind of bad input logs once in a while and garbage cannot grow the keys without bound."""
    return f"{layer}:{_VARIABLE.sub('', str(exc))[:60]}"
