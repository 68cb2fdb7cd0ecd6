"""Live video on the platform's request: the SDP offer and answer, and one RTP/PS session.

The platform INVITEs a channel with an SDP offer (``s=Play``, ``m=video <port> RTP/AVP 96`` or
``TCP/RTP/AVP`` with ``a=setup``, ``y=<ssrc>``); we answer with our SDP and, once ACKed, send the
camera's own elementary stream (no re-encoding) muxed as MPEG-PS in RTP until BYE or until the
camera's stream ends. Over TCP, ``a=setup:passive`` in the offer means the platform listens and we
connect; ``active`` means it connects to the port our answer names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gateway.gb28181.ps import STREAM_H264, STREAM_H265, RtpPacker, mux_frame, tcp_frame

__all__ = ["AccessUnit", "LiveSession", "Offer", "VideoSource", "answer_sdp", "parse_offer", "refusal"]

log = logging.getLogger(__name__)

_CONNECT_S = 5.0


class AccessUnit(NamedTuple):
    """One frame of the camera's elementary stream, Annex B, with its 90 kHz PTS."""

    data: bytes
    pts: int
    key: bool
    codec: str = "h264"


class VideoSource(Protocol):
    """The cameras' streams, by device id."""

    def codec(self, device: str) -> str | None:
        """The codec the camera streams now ("h264", "hevc"); None when it streams nothing."""

    def open(self, device: str) -> AsyncIterator[AccessUnit]:
        """The camera's access units from a key frame on; ends when the camera's stream ends."""


@dataclass(frozen=True, slots=True)
class Offer:
    """What the platform asked for in its SDP."""

    session: str
    ip: str
    port: int
    tcp: bool
    setup: str | None
    ssrc: int | None
    payload_type: int


def parse_offer(sdp: bytes) -> Offer:
    """Read the platform's SDP offer. Raises ValueError naming what is missing or wrong."""
    text = sdp.decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if "=" in ln]
    fields: dict[str, list[str]] = {}
    for ln in lines:
        key, _, value = ln.partition("=")
        fields.setdefault(key, []).append(value)
    session = (fields.get("s") or [""])[0].strip()
    conn = next((c for c in fields.get("c", []) if c.startswith("IN IP4 ")), None)
    media = next((m for m in fields.get("m", []) if m.startswith("video ")), None)
    if conn is None or media is None:
        raise ValueError("the SDP offer has no 'c=IN IP4' or no 'm=video' line")
    parts = media.split()
    if len(parts) < 4 or not parts[1].isdigit():
        raise ValueError(f"unreadable media line m={media}")
    proto = parts[2].upper()
    if proto not in ("RTP/AVP", "TCP/RTP/AVP", "RTP/AVP/TCP"):
        raise ValueError(f"media transport {parts[2]} is not RTP/AVP or TCP/RTP/AVP")
    pts = [int(p) for p in parts[3:] if p.isdigit()]
    ps_pt = next((int(m.group(1)) for a in fields.get("a", []) if (m := re.match(r"rtpmap:(\d+) PS/90000", a))), None)
    if ps_pt is None and 96 not in pts:
        raise ValueError("the offer has no PS/90000 payload type")
    setup = next((a.split(":", 1)[1].strip() for a in fields.get("a", []) if a.startswith("setup:")), None)
    y = (fields.get("y") or [""])[0].strip()
    return Offer(
        session=session,
        ip=conn.split()[2],
        port=int(parts[1]),
        tcp=proto != "RTP/AVP",
        setup=setup,
        ssrc=int(y) if y.isdigit() else None,
        payload_type=ps_pt if ps_pt is not None else 96,
    )


def answer_sdp(device_id: str, ip: str, port: int, offer: Offer, ssrc: int) -> bytes:
    """Our SDP answer: send-only PS video from ``ip:port``, with the SSRC we will use."""
    proto = "TCP/RTP/AVP" if offer.tcp else "RTP/AVP"
    lines = [
        "v=0",
        f"o={device_id} 0 0 IN IP4 {ip}",
        f"s={offer.session or 'Play'}",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=video {port} {proto} {offer.payload_type}",
        "a=sendonly",
        f"a=rtpmap:{offer.payload_type} PS/90000",
    ]
    if offer.tcp:
        lines += [f"a=setup:{'active' if offer.setup != 'active' else 'passive'}", "a=connection:new"]
    lines.append(f"y={ssrc:010d}")
    return ("\r\n".join(lines) + "\r\n").encode()


class _Sink:
    """Where RTP packets go: a UDP socket, or a TCP stream with RFC 4571 framing."""

    def __init__(self) -> None:
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._accepted: asyncio.Future[asyncio.StreamWriter] | None = None
        self.local_port = 0

    async def prepare(self, offer: Offer, local_ip: str) -> None:
        """For an 'active' TCP offer, listen now (our answer names the port)."""
        if offer.tcp and offer.setup == "active":
            loop = asyncio.get_running_loop()
            self._accepted = loop.create_future()

            async def on_client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                if self._accepted is not None and not self._accepted.done():
                    self._accepted.set_result(w)
                else:
                    w.close()

            self._server = await asyncio.start_server(on_client, local_ip, 0)
            self.local_port = self._server.sockets[0].getsockname()[1]
        elif not offer.tcp:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(offer.ip, offer.port)
            )
            self.local_port = self._udp.get_extra_info("sockname")[1]

    async def connect(self, offer: Offer) -> None:
        if not offer.tcp:
            return
        async with asyncio.timeout(_CONNECT_S):
            if self._accepted is not None:
                self._writer = await self._accepted
            else:
                _r, self._writer = await asyncio.open_connection(offer.ip, offer.port)

    async def send(self, packets: list[bytes]) -> None:
        if self._udp is not None:
            for p in packets:
                self._udp.sendto(p)
            await asyncio.sleep(0)
            return
        assert self._writer is not None
        self._writer.write(b"".join(tcp_frame(p) for p in packets))
        await self._writer.drain()

    def close(self) -> None:
        for closeable in (self._udp, self._writer, self._server):
            if closeable is not None:
                closeable.close()


class LiveSession:
    """One platform dialog's video: prepared at INVITE, started at ACK, stopped at BYE."""

    def __init__(self, channel_id: str, device: str, offer: Offer, ssrc: int, *, allow_h265: bool = False) -> None:
        self.channel_id = channel_id
        self.device = device
        self.offer = offer
        self.ssrc = ssrc
        self.allow_h265 = allow_h265
        self.frames_sent = 0
        self.bytes_sent = 0
        self._sink = _Sink()

    @property
    def local_port(self) -> int:
        return self._sink.local_port

    async def prepare(self, local_ip: str) -> None:
        await self._sink.prepare(self.offer, local_ip)

    async def run(self, source: VideoSource) -> str:
        """Send until the source ends or the connection fails (returns why), or until cancelled."""
        packer = RtpPacker(self.ssrc, self.offer.payload_type)
        try:
            await self._sink.connect(self.offer)
            async for au in source.open(self.device):
                # The INVITE was refused for such a codec; a camera reconnecting with another one
                # ends the session.
                why = refusal(au.codec, allow_h265=self.allow_h265)
                if why is not None:
                    return why
                stream_type = stream_type_of(au.codec)
                assert stream_type is not None
                data = mux_frame(au.data, au.pts, key=au.key, stream_type=stream_type)
                await self._sink.send(packer.packets(data, au.pts))
                self.frames_sent += 1
                self.bytes_sent += len(data)
            return "the camera's stream ended"
        except (OSError, TimeoutError) as exc:
            return f"media connection failed: {type(exc).__name__}: {exc}"
        finally:
            self._sink.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sink.close()


def stream_type_of(codec: str) -> int | None:
    """The PSM stream type of a codec name, None for codecs PS carries no code for here."""
    return {"h264": STREAM_H264, "hevc": STREAM_H265, "h265": STREAM_H265}.get(codec.lower())


def refusal(codec: str, *, allow_h265: bool) -> str | None:
    """Why a camera streaming ``codec`` cannot be relayed in this edition (no re-encoding), or None."""
    stream_type = stream_type_of(codec)
    if stream_type is None:
        return f"the camera sends {codec}, which GB/T 28181 PS carries no code for (H.264, H.265)"
    if stream_type == STREAM_H265 and not allow_h265:
        return 'the camera sends H.265, which GB/T 28181-2016 does not carry (version = "2022" does)'
    return None
