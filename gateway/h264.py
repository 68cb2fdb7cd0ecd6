"""H.264 access units as a browser takes them over WebRTC: Annex B, parameter sets in band.

RTSP gives Annex B packets and the SPS/PPS out of band (the SDP's sprop-parameter-sets, as the
stream's extradata); MP4 and Matroska give length-prefixed packets and an avcC record. aiortc
splits access units at start codes, and a browser joining mid-stream needs the SPS/PPS before the
key frame it starts at: these helpers make both true without decoding anything.
"""

from __future__ import annotations

__all__ = ["annexb_parameter_sets", "has_parameter_sets", "split_annexb", "to_annexb"]

_START = b"\x00\x00\x00\x01"
_NAL_SPS = 7


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B buffer (start codes removed)."""
    out: list[bytes] = []
    i, n = 0, len(data)
    start = -1
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                out.append(data[start:i].rstrip(b"\x00"))
            i += 3
            start = i
            continue
        i += 1
    if start >= 0 and start < n:
        out.append(data[start:])
    return [u for u in out if u]


def _is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(_START)


def annexb_parameter_sets(extradata: bytes) -> tuple[bytes, int]:
    """SPS and PPS from a stream's extradata as Annex B, and the NAL length size of its packets
    (0: the packets are Annex B already). Extradata is either Annex B (RTSP's sprop-parameter-sets)
    or an avcC record (MP4/Matroska), ISO/IEC 14496-15 5.2.4.1."""
    if not extradata:
        return b"", 0
    if _is_annexb(extradata):
        return b"".join(_START + u for u in split_annexb(extradata)), 0
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("extradata is neither Annex B nor an avcC record")
    length_size = (extradata[4] & 0x03) + 1
    units: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):  # SPS count (5 bits), then PPS count (8 bits)
        if pos >= len(extradata):
            break
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            units.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return b"".join(_START + u for u in units if u), length_size


def to_annexb(data: bytes, length_size: int) -> bytes:
    """One access unit as Annex B: unchanged when it is already, else its length prefixes
    (``length_size`` bytes, big-endian) replaced by start codes."""
    if length_size == 0 or (_is_annexb(data) and not _tiles(data, length_size)):
        return data
    out = bytearray()
    pos, n = 0, len(data)
    while pos + length_size <= n:
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0 or pos + size > n:
            break  # a truncated unit: send what is whole
        out += _START
        out += data[pos : pos + size]
        pos += size
    return bytes(out)


def _tiles(data: bytes, length_size: int) -> bool:
    """Whether ``data`` reads as length-prefixed units end to end. A first unit of 256 to 511
    bytes starts with 00 00 01 under a 4-byte length: only this tells it from a start code."""
    pos, n = 0, len(data)
    while pos + length_size <= n:
        size = int.from_bytes(data[pos : pos + length_size], "big")
        if size <= 0:
            return False
        pos += length_size + size
    return pos == n


def has_parameter_sets(annexb: bytes) -> bool:
    return any(u[0] & 0x1F == _NAL_SPS for u in split_annexb(annexb[:512]))
