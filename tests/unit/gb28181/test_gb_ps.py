"""The PS muxer and RTP packer: what we send is read back by libavformat's MPEG-PS demuxer (PyAV)."""

from __future__ import annotations

import io
import itertools
import struct

import av
import pytest

from gateway.gb28181.ps import (
    RtpPacker,
    crc32_mpeg2,
    mux_frame,
    pack_header,
    pes_packets,
    program_stream_map,
    tcp_frame,
)
from tests.unit.gb28181.h264 import clip

FRAME_90K = 3600  # 25 fps


def test_crc32_mpeg2_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogue's check value


def test_psm_crc_covers_the_map() -> None:
    psm = program_stream_map(0x1B)
    assert psm[:4] == b"\x00\x00\x01\xbc" and struct.unpack(">H", psm[4:6])[0] == len(psm) - 6
    assert crc32_mpeg2(psm) == 0  # a message followed by its CRC checks to zero
    assert psm[12:14] == b"\x1b\xe0"


@pytest.mark.parametrize("scr", [0, 1, 3600, 2**32 + 12345, 2**33 - 1])
def test_pack_header_scr_round_trip(scr: int) -> None:
    h = pack_header(scr)
    assert len(h) == 14 and h[:4] == b"\x00\x00\x01\xba"
    b = h[4:10]
    got = (
        ((b[0] >> 3) & 0x07) << 30
        | (b[0] & 0x03) << 28
        | b[1] << 20
        | ((b[2] >> 3) & 0x1F) << 15
        | (b[2] & 0x03) << 13
        | b[3] << 5
        | (b[4] >> 3)
    )
    assert got == scr
    assert b[0] & 0xC4 == 0x44 and b[2] & 0x04 and b[4] & 0x04 and b[5] & 0x01  # '01' and markers


def test_a_large_frame_spans_pes_packets() -> None:
    payload = bytes(range(256)) * 600  # 153,600 bytes
    packets = pes_packets(payload, 90_000)
    assert len(packets) == 3
    body = b""
    for i, p in enumerate(packets):
        assert p[:4] == b"\x00\x00\x01\xe0"
        assert struct.unpack(">H", p[4:6])[0] == len(p) - 6 <= 0xFFFF
        hdr = 9 + p[8]
        assert (p[7] & 0x80 != 0) == (i == 0)  # PTS on the first only
        body += p[hdr:]
    assert body == payload


def _demux(ps: bytes) -> list[av.Packet]:  # type: ignore[type-arg]
    with av.open(io.BytesIO(ps), mode="r", format="mpeg") as container:
        return [p for p in container.demux(video=0) if p.size]


def test_pyav_demuxes_and_decodes_what_we_mux() -> None:
    aus = clip()
    ps = b"".join(mux_frame(au, 90_000 + i * FRAME_90K, key=key) for i, (au, key) in enumerate(aus))
    with av.open(io.BytesIO(ps), mode="r", format="mpeg") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        pts = []
        decoded = 0
        for packet in container.demux(stream):
            if packet.pts is not None:
                pts.append(packet.pts)
            decoded += len(packet.decode())
    assert decoded == len(aus)
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert pts[0] == 90_000 and pts[-1] == 90_000 + (len(aus) - 1) * FRAME_90K


def test_rtp_over_tcp_carries_the_stream_whole() -> None:
    aus = clip()
    packer = RtpPacker(ssrc=123456789, first_seq=65530)  # wraps the 16-bit sequence
    stream = b""
    for i, (au, key) in enumerate(aus):
        ts = i * FRAME_90K
        for pkt in packer.packets(mux_frame(au, ts, key=key), ts):
            stream += tcp_frame(pkt)
    # The receiver's side: undo RFC 4571 framing, check each RTP header, join the payloads.
    ps, seqs, marks, off = b"", [], 0, 0
    while off < len(stream):
        (n,) = struct.unpack(">H", stream[off : off + 2])
        pkt = stream[off + 2 : off + 2 + n]
        off += 2 + n
        v, m_pt, seq, _ts, ssrc = struct.unpack(">BBHII", pkt[:12])
        assert (v, m_pt & 0x7F, ssrc) == (0x80, 96, 123456789)
        assert len(pkt) <= 12 + 1400
        seqs.append(seq)
        marks += m_pt >> 7
        ps += pkt[12:]
    assert marks == len(aus)  # one marker per frame
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert len(_demux(ps)) == len(aus)
