"""The platform's INVITE dialogs for live video: admission, SDP answer, ACK, BYE either way.

The channel hands INVITE, ACK and BYE here; this class answers through the channel's
:class:`Dialogs` seam (answer a request, send a request in a dialog) and runs one
:class:`LiveSession` per dialog, capped at ``max_sessions``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from edge_core.tasks import TaskSet
from gateway.gb28181.live import LiveSession, VideoSource, answer_sdp, parse_offer, refusal
from gateway.gb28181.mapping import GbCamera
from gateway.gb28181.sip import SipMessage

__all__ = ["Dialogs", "LiveCalls"]

log = logging.getLogger(__name__)

_ACK_WAIT_S = 32.0  # RFC 3261 timer H: 64 * T1


class Dialogs(Protocol):
    """What the calls need from the channel."""

    @property
    def local_ip(self) -> str: ...

    def answer(
        self,
        req: SipMessage,
        status: int,
        *,
        warning: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None: ...

    def in_dialog(self, method: str, invite: SipMessage) -> SipMessage: ...

    async def send(self, msg: SipMessage) -> SipMessage | None: ...


@dataclass(slots=True)
class _Call:
    invite: SipMessage
    session: LiveSession
    task: asyncio.Task[None] | None = None


class LiveCalls:
    """Live sessions by Call-ID."""

    def __init__(
        self,
        name: str,
        device_id: str,
        cameras: Mapping[str, GbCamera],
        video: VideoSource | None,
        max_sessions: int,
        dialogs: Dialogs,
        *,
        allow_h265: bool = False,
    ) -> None:
        self._name = name
        self._device_id = device_id
        self._cameras = cameras
        self._video = video
        self._max = max_sessions
        self._allow_h265 = allow_h265
        self._d = dialogs
        self._calls: dict[str, _Call] = {}
        self._jobs = TaskSet()

    @property
    def active(self) -> int:
        return len(self._calls)

    def on_invite(self, req: SipMessage) -> None:
        call_id = req.get("call-id") or ""
        if call_id in self._calls:
            return  # a retransmission while we prepare; the answer will come
        m = re.match(r"sips?:(\d{20})@", req.uri)
        cam = self._cameras.get(m.group(1)) if m else None
        if cam is None:
            self._d.answer(req, 404, warning=f"no channel {req.uri}")
            return
        try:
            offer = parse_offer(req.body)
        except ValueError as exc:
            log.warning("%s: INVITE for %s refused: %s", self._name, cam.channel_id, exc)
            self._d.answer(req, 488, warning=str(exc))
            return
        if offer.session.lower() != "play":
            self._d.answer(req, 488, warning=f"s={offer.session} is not offered: live Play only")
            return
        if self._video is None:
            self._d.answer(req, 503, warning="live video is not available on this box")
            return
        codec = self._video.codec(cam.device)
        if codec is None:
            log.warning("%s: INVITE for %s refused: the camera streams nothing now", self._name, cam.channel_id)
            self._d.answer(req, 480, warning=f"camera {cam.device} streams nothing now")
            return
        why = refusal(codec, allow_h265=self._allow_h265)
        if why is not None:
            log.warning("%s: INVITE for %s refused: %s", self._name, cam.channel_id, why)
            self._d.answer(req, 488, warning=why)
            return
        if len(self._calls) >= self._max:
            log.warning("%s: INVITE for %s refused: %d live sessions already", self._name, cam.channel_id, self._max)
            self._d.answer(req, 486, warning=f"{self._max} live sessions already")
            return
        ssrc = offer.ssrc if offer.ssrc is not None else secrets.randbelow(10**9)
        call = _Call(req, LiveSession(cam.channel_id, cam.device, offer, ssrc, allow_h265=self._allow_h265))
        self._calls[call_id] = call
        self._jobs.spawn(self._accept(call_id, call), name=f"{self._name}.invite")

    async def _accept(self, call_id: str, call: _Call) -> None:
        try:
            await call.session.prepare(self._d.local_ip)
        except OSError as exc:
            self._calls.pop(call_id, None)
            self._d.answer(call.invite, 500, warning=f"cannot open the media socket: {exc}")
            return
        sdp = answer_sdp(
            self._device_id, self._d.local_ip, call.session.local_port, call.session.offer, call.session.ssrc
        )
        contact = f"<sip:{self._device_id}@{self._d.local_ip}>"
        self._d.answer(call.invite, 200, headers=[("Contact", contact), ("Content-Type", "application/sdp")], body=sdp)
        await asyncio.sleep(_ACK_WAIT_S)
        if call.task is None and self._calls.get(call_id) is call:
            log.warning("%s: no ACK for the INVITE of %s; dropping it", self._name, call.session.channel_id)
            self._calls.pop(call_id, None)
            call.session.close()

    def on_ack(self, req: SipMessage) -> None:
        call = self._calls.get(req.get("call-id") or "")
        if call is not None and call.task is None:
            call.task = self._jobs.spawn(self._play(req.get("call-id") or "", call), name=f"{self._name}.live")

    async def _play(self, call_id: str, call: _Call) -> None:
        assert self._video is not None
        log.info(
            "%s: live %s to %s:%d", self._name, call.session.channel_id, call.session.offer.ip, call.session.offer.port
        )
        why = await call.session.run(self._video)
        if self._calls.pop(call_id, None) is None:
            return
        log.info("%s: live %s ended: %s; sending BYE", self._name, call.session.channel_id, why)
        await self._d.send(self._d.in_dialog("BYE", call.invite))

    def on_bye(self, req: SipMessage) -> bool:
        """End the dialog's session; False when the dialog is unknown."""
        call = self._calls.pop(req.get("call-id") or "", None)
        if call is None:
            return False
        if call.task is not None:
            call.task.cancel()
        call.session.close()
        self._d.answer(req, 200)
        log.info(
            "%s: live %s stopped by the platform (%d frames)",
            self._name,
            call.session.channel_id,
            call.session.frames_sent,
        )
        return True

    def stop(self) -> None:
        for call in self._calls.values():
            if call.task is not None:
                call.task.cancel()
            call.session.close()
        self._calls.clear()
        self._jobs.cancel()
