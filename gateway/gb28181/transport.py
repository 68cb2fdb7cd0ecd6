"""One SIP connection to the platform, over UDP or TCP: send messages, receive parsed ones.

What arrives goes into a bounded queue as a :class:`SipMessage` or, when it cannot be read, a
:class:`SipParseError` (the channel answers those it can and logs the rest). A TCP stream whose
framing is lost (a head that never ends, a body that never arrives) is closed: the supervisor
reconnects and registers again, which is the only way to find the next message boundary.
"""

from __future__ import annotations

import asyncio
import logging

from edge_core.errors import DriverConnectError
from gateway.gb28181.sip import (
    MAX_HEAD_BYTES,
    SipMessage,
    SipParseError,
    content_length,
    parse_head,
    parse_message,
)

__all__ = ["Incoming", "SipTransport", "StreamClosed", "open_transport"]

log = logging.getLogger(__name__)


class StreamClosed(Exception):
    """Queued last when a stream ends, after what arrived before it (so that is answered first)."""


Incoming = SipMessage | SipParseError | StreamClosed
_QUEUE = 256
_BODY_WAIT_S = 5.0
# A body over the limit is read and dropped, up to this much, so the stream keeps its framing;
# anything bigger closes the connection.
_DISCARD_MAX = 16 * 1024 * 1024


class SipTransport:
    """Base of the UDP and TCP connections."""

    proto: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue(_QUEUE)
        self.local_host = "127.0.0.1"
        self.local_port = 0

    def _put(self, item: Incoming) -> None:
        try:
            self.incoming.put_nowait(item)
        except asyncio.QueueFull:
            # The platform floods us faster than we answer: UDP retransmits the ones that matter.
            log.warning("%s: receive queue full, dropping a message", self.name)

    def send(self, msg: SipMessage) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not data.strip():
            return  # CRLF keepalives (RFC 5626) and empty datagrams
        try:
            self._owner._put(parse_message(data))
        except SipParseError as exc:
            self._owner._put(exc)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: the platform is not listening (yet).
        log.debug("%s: %s", self._owner.name, exc)


class UdpTransport(SipTransport):
    proto = "UDP"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._transport: asyncio.DatagramTransport | None = None

    async def connect(self, host: str, port: int, local_port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), remote_addr=(host, port), local_addr=("0.0.0.0", local_port)
            )
        except OSError as exc:
            raise DriverConnectError(
                f"cannot open UDP to {host}:{port}: {exc.strerror or exc}", device_id=self.name, code="connect"
            ) from None
        self._transport = transport
        self.local_host, self.local_port = _local(transport.get_extra_info("sockname"))

    def send(self, msg: SipMessage) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(msg.encode())

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class TcpTransport(SipTransport):
    proto = "TCP"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int, local_port: int, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=("0.0.0.0", local_port) if local_port else None, limit=MAX_HEAD_BYTES + 4
                )
        except (OSError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise DriverConnectError(
                f"cannot connect TCP to {host}:{port}: {why}", device_id=self.name, code="connect"
            ) from None
        self._writer = writer
        self.local_host, self.local_port = _local(writer.get_extra_info("sockname"))
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader), name=f"{self.name}.read")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "platform closed the connection"
        try:
            while True:
                found = await self._read_one(reader)
                if found is not None:
                    why = found
                    log.warning("%s: %s; closing the connection", self.name, why)
                    return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # The end must not be lost to a full queue (the oldest message makes room). The
            # channel closes the writer once it has answered what came before.
            if self.incoming.full():
                self.incoming.get_nowait()
            self.incoming.put_nowait(StreamClosed(why))

    async def _read_one(self, reader: asyncio.StreamReader) -> str | None:
        """Read one message into the queue; returns why the stream must close, else None."""
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return f"a message head over {MAX_HEAD_BYTES} bytes"
        head = raw[:-4].lstrip(b"\r\n")
        if not head:
            return None  # CRLF keepalives between messages (RFC 5626 4.4.1)
        try:
            msg = parse_head(head)
            n = content_length(msg)
        except SipParseError as exc:
            self._put(exc)
            if exc.status == 413:
                return await self._discard(reader, msg_len=_declared(head))
            return "unparseable message head on a stream"
        if n < 0:
            self._put(SipParseError("no Content-Length on a stream transport", request=msg if msg.is_request else None))
            return "no Content-Length on a stream"
        try:
            async with asyncio.timeout(_BODY_WAIT_S):
                msg.body = await reader.readexactly(n)
        except TimeoutError:
            self._put(
                SipParseError(
                    f"Content-Length {n} but the body did not arrive within {_BODY_WAIT_S:.0f} s",
                    request=msg if msg.is_request else None,
                )
            )
            return "wrong Content-Length (body never completed)"
        self._put(msg)
        return None

    async def _discard(self, reader: asyncio.StreamReader, msg_len: int) -> str | None:
        if msg_len < 0 or msg_len > _DISCARD_MAX:
            return f"a body of {msg_len} bytes"
        try:
            async with asyncio.timeout(_BODY_WAIT_S * 4):
                left = msg_len
                while left:
                    chunk = await reader.read(min(left, 65536))
                    if not chunk:
                        return "platform closed the connection"
                    left -= len(chunk)
        except TimeoutError:
            return "an oversized body that never completed"
        return None

    def send(self, msg: SipMessage) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(msg.encode())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()


def _declared(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l") and value.strip().isdigit():
            return int(value.strip())
    return -1


def _local(sockname: object) -> tuple[str, int]:
    """Our address as the platform sees it (the routed source address, once connected)."""
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return "127.0.0.1", 0


async def open_transport(
    proto: str, name: str, host: str, port: int, local_port: int, timeout_s: float
) -> SipTransport:
    """Connect to the platform. Raises DriverConnectError."""
    if proto == "tcp":
        tcp = TcpTransport(name)
        await tcp.connect(host, port, local_port, timeout_s)
        return tcp
    udp = UdpTransport(name)
    await udp.connect(host, port, local_port)
    return udp
