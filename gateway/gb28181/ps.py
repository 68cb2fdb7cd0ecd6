"""MPEG-2 Program Stream (ISO/IEC 13818-1) muxing of H.264/H.265 access units, and RTP packing.

Pure code, no re-encoding: each access unit (Annex B, with its start codes) becomes a pack header,
at a key frame also a system header and a program stream map, then PES packets of at most 64 KiB
carrying the bytes; the first PES of a frame carries its PTS. The PS bytes of a frame are then cut
into RTP packets (payload type 96, 90 kHz clock, marker on a frame's last packet), framed with a
2-byte length for TCP (RFC 4571).
"""

from __future__ import annotations

import struct

__all__ = [
    "STREAM_H264",
    "STREAM_H265",
    "RtpPacker",
    "crc32_mpeg2",
    "mux_frame",
    "pack_header",
    "pes_packets",
    "program_stream_map",
    "system_header",
    "tcp_frame",
]

STREAM_H264 = 0x1B
STREAM_H265 = 0x24
_VIDEO_ID = 0xE0
_MUX_RATE = 50_000  # units of 50 bytes/s: 20 Mbit/s, a bound for receivers' buffers, not a promise
_PES_MAX = 0xFFFF - 3 - 5  # PES_packet_length counts the 3 flag bytes and 5 PTS bytes
_MASK33 = (1 << 33) - 1


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def pack_header(scr: int) -> bytes:
    """The 14-byte MPEG-2 pack header with system clock reference ``scr`` (90 kHz, extension 0)."""
    scr &= _MASK33
    b = bytes(
        (
            0x40 | ((scr >> 27) & 0x38) | 0x04 | ((scr >> 28) & 0x03),
            (scr >> 20) & 0xFF,
            ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
            (scr >> 5) & 0xFF,
            ((scr << 3) & 0xF8) | 0x04,
            0x01,
        )
    )
    rate = (_MUX_RATE << 2) | 0x03
    return b"\x00\x00\x01\xba" + b + rate.to_bytes(3, "big") + b"\xf8"


def system_header() -> bytes:
    """A system header announcing one video stream."""
    body = bytes(
        (
            0x80 | (_MUX_RATE >> 15) & 0x7F,
            (_MUX_RATE >> 7) & 0xFF,
            ((_MUX_RATE << 1) & 0xFE) | 0x01,
            0x00,  # audio_bound 0, fixed 0, CSPS 0
            0xE1,  # audio lock, video lock, marker, video_bound 1
            0x7F,  # no packet rate restriction
            _VIDEO_ID,
            0xE0 | 0x04,  # "11", buffer scale 1 (units of 1024 bytes), size bound 0x400: 1 MiB
            0x00,
        )
    )
    return b"\x00\x00\x01\xbb" + struct.pack(">H", len(body)) + body


def program_stream_map(stream_type: int) -> bytes:
    """A PSM mapping stream 0xE0 to ``stream_type`` (0x1B H.264, 0x24 H.265), with its CRC."""
    es_map = bytes((stream_type, _VIDEO_ID, 0x00, 0x00))
    body = bytes((0xE0, 0xFF, 0x00, 0x00)) + struct.pack(">H", len(es_map)) + es_map
    head = b"\x00\x00\x01\xbc" + struct.pack(">H", len(body) + 4) + body
    return head + struct.pack(">I", crc32_mpeg2(head))


def _pts(pts: int) -> bytes:
    pts &= _MASK33
    return bytes(
        (
            0x21 | ((pts >> 29) & 0x0E),
            (pts >> 22) & 0xFF,
            ((pts >> 14) & 0xFE) | 0x01,
            (pts >> 7) & 0xFF,
            ((pts << 1) & 0xFE) | 0x01,
        )
    )


def pes_packets(payload: bytes, pts: int) -> list[bytes]:
    """Video PES packets carrying ``payload``: the first with the PTS, the rest without."""
    out = []
    first = payload[:_PES_MAX]
    out.append(b"\x00\x00\x01\xe0" + struct.pack(">H", len(first) + 8) + b"\x84\x80\x05" + _pts(pts) + first)
    rest = payload[_PES_MAX:]
    step = _PES_MAX + 5
    for i in range(0, len(rest), step):
        chunk = rest[i : i + step]
        out.append(b"\x00\x00\x01\xe0" + struct.pack(">H", len(chunk) + 3) + b"\x80\x00\x00" + chunk)
    return out


def mux_frame(access_unit: bytes, pts: int, *, key: bool, stream_type: int = STREAM_H264) -> bytes:
    """One access unit as Program Stream bytes (system header and PSM at key frames)."""
    parts = [pack_header(pts)]
    if key:
        parts += [system_header(), program_stream_map(stream_type)]
    parts += pes_packets(access_unit, pts)
    return b"".join(parts)


def tcp_frame(packet: bytes) -> bytes:
    """RFC 4571: a 2-byte big-endian length before each RTP packet on a stream."""
    return struct.pack(">H", len(packet)) + packet


class RtpPacker:
    """Cuts a frame's PS bytes into RTP packets of one stream (one SSRC, continuing sequence)."""

    def __init__(self, ssrc: int, payload_type: int = 96, mtu_payload: int = 1400, first_seq: int = 0) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type
        self.mtu_payload = mtu_payload
        self.seq = first_seq & 0xFFFF

    def packets(self, data: bytes, timestamp: int) -> list[bytes]:
        out = []
        n = len(data)
        for i in range(0, n, self.mtu_payload):
            last = i + self.mtu_payload >= n
            head = struct.pack(
                ">BBHII",
                0x80,
                (0x80 if last else 0) | self.payload_type,
                self.seq,
                timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            out.append(head + data[i : i + self.mtu_payload])
            self.seq = (self.seq + 1) & 0xFFFF
        return out
