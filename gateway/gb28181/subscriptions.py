"""The platform's SUBSCRIBEs (GB/T 28181 9.11, RFC 6665): catalog and alarm subscriptions.

A subscription is a dialog the platform opens with SUBSCRIBE (``Event: Catalog`` or
``Event: Alarm``, a MANSCDP ``Query`` body with the same CmdType) and refreshes before its
``Expires``; ``Expires: 0`` ends it. We answer 200 OK with the granted ``Expires`` and a
``Response`` body (Result OK), then send NOTIFYs in the dialog, each with ``Subscription-State``:

- **Catalog**: at once the whole catalog (items with Event ADD), then, while it lasts, one NOTIFY
  per change of a channel's status (Event ON or OFF, as its camera streams or stops).
- **Alarm**: while it lasts, alarms go as NOTIFY in its dialog instead of MESSAGE (the outbox
  cursor moves on the NOTIFY's 2xx as on a MESSAGE's). Its filters (priority, method, type, time)
  are not applied: every alarm goes, as without a subscription.

Another event package gets 489 Bad Event with ``Allow-Events``; an unreadable body 400.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge_config.gb28181 import Gb28181Settings
from edge_core.tasks import TaskSet
from gateway.gb28181 import manscdp
from gateway.gb28181.calls import Dialogs
from gateway.gb28181.mapping import GbCamera, catalog_items
from gateway.gb28181.sip import SipMessage

__all__ = ["EVENTS", "Subscriptions"]

log = logging.getLogger(__name__)

EVENTS = ("Catalog", "Alarm")
_DEFAULT_S = 3600  # RFC 6665 7.2: the event package's default; GB/T 28181 names none
_MAX_S = 86_400
_WATCH_S = 1.0


@dataclass(slots=True)
class _Subscription:
    event: str
    request: SipMessage
    sn: str
    expires_at: float
    online: dict[str, bool] = field(default_factory=dict)


class Subscriptions:
    """The platform's live subscriptions, by Call-ID."""

    def __init__(
        self,
        name: str,
        cfg: Gb28181Settings,
        dialogs: Dialogs,
        cameras: Sequence[GbCamera],
        online: Callable[[str], bool],
    ) -> None:
        self._name = name
        self._cfg = cfg
        self._d = dialogs
        self._cameras = list(cameras)
        self._online = online
        self._subs: dict[str, _Subscription] = {}
        self._jobs = TaskSet()

    def on_subscribe(self, req: SipMessage) -> None:
        cfg = self._cfg
        event = (req.get("event") or "").split(";")[0].strip()
        want = next((e for e in EVENTS if e.lower() == event.lower()), None)
        if want is None:
            log.warning("%s: SUBSCRIBE to event %r refused with 489", self._name, event)
            self._d.answer(
                req, 489, warning=f"no event package {event!r}", headers=[("Allow-Events", ", ".join(EVENTS))]
            )
            return
        try:
            q = manscdp.parse(req.body, cfg.charset) if req.body else None
        except manscdp.ManscdpError as exc:
            self._d.answer(req, exc.status, warning=str(exc))
            return
        raw = (req.get("expires") or "").strip()
        granted = min(int(raw), _MAX_S) if raw.isdigit() else _DEFAULT_S
        call_id = req.get("call-id") or ""
        sn = q.sn if q is not None else "0"
        sub = _Subscription(want, req, sn, time.monotonic() + granted)
        body = manscdp.result_response(want, sn, cfg.device_id, True, cfg.charset)
        headers = [("Expires", str(granted)), ("Content-Type", manscdp.CONTENT_TYPE)]
        self._d.answer(req, 200, headers=headers, body=body)
        if granted == 0:
            self._subs.pop(call_id, None)
            log.info("%s: the platform ended its %s subscription", self._name, want)
            self._jobs.spawn(self._notify(sub, [], "terminated;reason=timeout"), name=f"{self._name}.notify")
            return
        known = call_id in self._subs
        self._subs[call_id] = sub
        log.info("%s: %s subscription %s for %d s", self._name, want, "refreshed" if known else "accepted", granted)
        if want == "Catalog":
            sub.online = {c.channel_id: self._online(c.device) for c in self._cameras}
            pages = manscdp.catalog_pages(
                sn,
                cfg.device_id,
                catalog_items(cfg, self._cameras, self._online),
                cfg.catalog_page,
                cfg.charset,
                version=cfg.version,
                event="ADD",
            )
            self._jobs.spawn(self._notify(sub, pages), name=f"{self._name}.notify")

    def alarm_subscription(self) -> _Subscription | None:
        """The latest alarm subscription still running, if any."""
        now = time.monotonic()
        return next((s for s in reversed(self._subs.values()) if s.event == "Alarm" and s.expires_at > now), None)

    async def send_alarm(self, sub: _Subscription, body: bytes) -> SipMessage | None:
        """An alarm as NOTIFY in ``sub``'s dialog: the platform's final answer, None when none came."""
        return await self._d.send(self._notify_request(sub, body, "active"))

    def _notify_request(self, sub: _Subscription, body: bytes, state: str) -> SipMessage:
        msg = self._d.in_dialog("NOTIFY", sub.request)
        if state == "active":
            state = f"active;expires={max(0, round(sub.expires_at - time.monotonic()))}"
        msg.headers += [("Event", sub.event), ("Subscription-State", state)]
        if body:
            msg.headers.append(("Content-Type", manscdp.CONTENT_TYPE))
            msg.body = body
        return msg

    async def _notify(self, sub: _Subscription, bodies: list[bytes], state: str = "active") -> None:
        for body in bodies or [b""]:
            resp = await self._d.send(self._notify_request(sub, body, state))
            if resp is None or not 200 <= resp.status < 300:
                what = "no answer" if resp is None else f"{resp.status} {resp.reason}"
                log.warning("%s: %s NOTIFY: %s", self._name, sub.event, what)
                if resp is not None and resp.status == 481:  # the platform forgot the dialog
                    self._subs.pop(sub.request.get("call-id") or "", None)
                return

    async def watch(self) -> None:
        """Expire subscriptions, and tell catalog subscribers of channels that went ON or OFF."""
        cfg = self._cfg
        while True:
            await asyncio.sleep(_WATCH_S)
            now = time.monotonic()
            for call_id, sub in list(self._subs.items()):
                if sub.expires_at <= now:
                    del self._subs[call_id]
                    log.info("%s: the platform's %s subscription expired", self._name, sub.event)
                    continue
                if sub.event != "Catalog":
                    continue
                for cam in self._cameras:
                    up = self._online(cam.device)
                    if sub.online.get(cam.channel_id) == up:
                        continue
                    sub.online[cam.channel_id] = up
                    items = catalog_items(cfg, [cam], self._online)
                    event = "ON" if up else "OFF"
                    pages = manscdp.catalog_pages(
                        sub.sn, cfg.device_id, items, 1, cfg.charset, version=cfg.version, event=event
                    )
                    self._jobs.spawn(self._notify(sub, pages), name=f"{self._name}.notify")

    def stop(self) -> None:
        """A new registration starts without subscriptions: the platform subscribes again."""
        self._subs.clear()
        self._jobs.cancel()
