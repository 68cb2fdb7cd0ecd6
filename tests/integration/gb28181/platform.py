"""An in-suite GB/T 28181 upper platform (上级平台) over UDP or TCP on 127.0.0.1.

Written from the standard's text and RFC 2617, for what SIPp cannot check: it verifies the
device's MD5 digest itself (with hashlib, not the gateway's code), records every REGISTER and
MESSAGE, and can stop answering keepalives or alarms, or send the device raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from gateway.gb28181.sip import SipMessage, SipParseError, parse_message

PLATFORM_ID = "51042110302000000001"
DEVICE_ID = "51042110302000000002"
REALM = "5104211030"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _auth_params(header: str) -> dict[str, str]:
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header)}


@dataclass
class Received:
    """A MESSAGE the device sent: its root, CmdType, parsed XML and raw message."""

    root: str
    cmd: str
    xml: ET.Element
    msg: SipMessage


@dataclass
class FakePlatform:
    proto: str
    password: str
    qop: bool = True
    date: str | None = None
    answer_keepalives: bool = True
    answer_alarms: bool = True
    grant_s: int | None = None
    alarm_delay_s: float = 0.0
    registers: list[SipMessage] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    others: list[SipMessage] = field(default_factory=list)
    responses: asyncio.Queue[SipMessage] = field(default_factory=asyncio.Queue)
    port: int = 0
    _udp: asyncio.DatagramTransport | None = None
    _peer: tuple[str, int] | None = None
    _source: tuple[str, int] | None = None
    _server: asyncio.Server | None = None
    _writer: asyncio.StreamWriter | None = None
    _nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    _cseq: int = 100

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: a free one; the port of a stopped platform brings it back)."""
        loop = asyncio.get_running_loop()
        if self.proto == "udp":
            platform = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    platform._source = addr  # answers go back there; requests of ours to the registered one
                    with contextlib.suppress(SipParseError):
                        msg = parse_message(data)
                        if msg.method == "REGISTER":
                            platform._peer = addr
                        platform._on(msg)

            self._udp, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", port))
            self.port = self._udp.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                self._on(parse_message(head + await reader.readexactly(n)))

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()

    def send_raw(self, data: bytes) -> None:
        if self._udp is not None:
            assert self._peer is not None
            self._udp.sendto(data, self._peer)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def _send(self, msg: SipMessage) -> None:
        if self._udp is not None and not msg.is_request and self._source is not None:
            self._udp.sendto(msg.encode(), self._source)
            return
        self.send_raw(msg.encode())

    def _answer(self, req: SipMessage, status: int, reason: str, extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        resp = SipMessage(status=status, reason=reason)
        resp.headers = [(h, req.get(h) or "") for h in ("Via", "From", "To", "Call-ID", "CSeq")]
        resp.headers[2] = ("To", resp.headers[2][1] + ";tag=plat")
        resp.headers += list(extra)
        self._send(resp)

    def _on(self, msg: SipMessage) -> None:
        if not msg.is_request:
            self.responses.put_nowait(msg)
            return
        if msg.method == "REGISTER":
            self.registers.append(msg)
            self._on_register(msg)
        elif msg.method == "MESSAGE":
            root = ET.fromstring(re.sub(r"^<\?xml[^>]*\?>", "", msg.body.decode(_charset(msg.body))))
            got = Received(root.tag, root.findtext("CmdType", ""), root, msg)
            self.messages.append(got)
            if got.cmd == "Keepalive" and not self.answer_keepalives:
                return
            if got.cmd == "Alarm" and not self.answer_alarms:
                return
            if got.cmd == "Alarm" and self.alarm_delay_s:
                # A slow platform: the device's next alarm waits for this answer.
                asyncio.get_running_loop().call_later(self.alarm_delay_s, self._answer, msg, 200, "OK")
                return
            self._answer(msg, 200, "OK")
        else:
            self.others.append(msg)
            self._answer(msg, 200, "OK")

    def _on_register(self, msg: SipMessage) -> None:
        auth = msg.get("Authorization")
        if auth is None:
            qop = ', qop="auth"' if self.qop else ""
            challenge = f'Digest realm="{REALM}", nonce="{self._nonce}"{qop}, algorithm=MD5'
            self._answer(msg, 401, "Unauthorized", [("WWW-Authenticate", challenge)])
            return
        p = _auth_params(auth.removeprefix("Digest "))
        ha1 = _md5(f"{p['username']}:{REALM}:{self.password}")
        ha2 = _md5(f"REGISTER:{p['uri']}")
        if self.qop:
            want = _md5(f"{ha1}:{self._nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        else:
            want = _md5(f"{ha1}:{self._nonce}:{ha2}")
        if p.get("response") != want or p["username"] != DEVICE_ID:
            self._answer(msg, 403, "Forbidden")
            return
        expires = int(msg.get("Expires") or "3600")
        self.accepted.append(expires)
        granted = expires if self.grant_s is None or expires == 0 else self.grant_s
        extra = [("Expires", str(granted))]
        if self.date is not None:
            extra.append(("Date", self.date))
        self._answer(msg, 200, "OK", extra)

    async def query(self, cmd: str, device_id: str, sn: int, *, root: str = "Query", extra: str = "") -> SipMessage:
        """Send a MESSAGE query to the device; returns the device's SIP answer to it."""
        body = (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>\r\n<SN>{sn}</SN>\r\n'
            f"<DeviceID>{device_id}</DeviceID>\r\n{extra}</{root}>\r\n"
        ).encode("gb2312")
        return await self.request("MESSAGE", body)

    def build(
        self, method: str, body: bytes, content_type: str = "Application/MANSCDP+xml", *, to: str = DEVICE_ID
    ) -> SipMessage:
        self._cseq += 1
        msg = SipMessage(method=method, uri=f"sip:{to}@{REALM}")
        msg.headers = [
            ("Via", f"SIP/2.0/{self.proto.upper()} 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)}"),
            ("From", f"<sip:{PLATFORM_ID}@{REALM}>;tag=p{self._cseq}"),
            ("To", f"<sip:{to}@{REALM}>"),
            ("Call-ID", f"q{secrets.token_hex(6)}@127.0.0.1"),
            ("CSeq", f"{self._cseq} {method}"),
            ("Max-Forwards", "70"),
        ]
        if body:
            msg.headers.append(("Content-Type", content_type))
        msg.body = body
        return msg

    async def request(
        self, method: str, body: bytes = b"", content_type: str = "Application/MANSCDP+xml"
    ) -> SipMessage:
        msg = self.build(method, body, content_type)
        self._send(msg)
        return await self.answer_to(msg)

    async def answer_to(self, msg: SipMessage, timeout: float = 10.0) -> SipMessage:
        async with asyncio.timeout(timeout):
            while True:
                resp = await self.responses.get()
                if resp.get("Call-ID") == msg.get("Call-ID"):
                    return resp

    async def wait_for(self, cmd: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(got := [m for m in self.messages if m.cmd == cmd]) < count:
                await asyncio.sleep(0.02)
        return got


def _charset(body: bytes) -> str:
    m = re.match(rb'<\?xml[^>]*encoding="([^"]+)"', body)
    return m.group(1).decode() if m else "utf-8"
