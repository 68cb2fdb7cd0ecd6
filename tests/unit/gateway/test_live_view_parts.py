"""The live view's pure parts: H.264 in the shape a browser takes, candidates kept on our network, roles."""

from __future__ import annotations

import asyncio

import pytest

from gateway.h264 import annexb_parameter_sets, has_parameter_sets, split_annexb, to_annexb
from gateway.live_relay import _GOP_BYTES, StreamRelay
from gateway.live_view import _same_scope, filter_candidates
from gateway.roles import Role, allowed, role_of

SPS = bytes([0x67, 0x4D, 0x00, 0x1E, 0xAB])
PPS = bytes([0x68, 0xEE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x10])
START = b"\x00\x00\x00\x01"


def _avcc(length_size: int = 4) -> bytes:
    return (
        bytes([1, 0x4D, 0x00, 0x1E, 0xFC | (length_size - 1), 0xE1])
        + len(SPS).to_bytes(2, "big")
        + SPS
        + bytes([1])
        + len(PPS).to_bytes(2, "big")
        + PPS
    )


def test_avcc_parameter_sets_and_length_prefixed_units_become_annex_b() -> None:
    sets, size = annexb_parameter_sets(_avcc())
    assert (sets, size) == (START + SPS + START + PPS, 4)
    unit = len(IDR).to_bytes(4, "big") + IDR + (3).to_bytes(4, "big") + b"\x06\x05\x01"
    assert to_annexb(unit, 4) == START + IDR + START + b"\x06\x05\x01"
    assert split_annexb(sets + to_annexb(unit, 4)) == [SPS, PPS, IDR, b"\x06\x05\x01"]
    assert has_parameter_sets(sets) and not has_parameter_sets(START + IDR)


def test_a_unit_of_256_to_511_bytes_is_not_taken_for_a_start_code() -> None:
    # Its 4-byte length is 00 00 01 xx: what a start code looks like.
    slice_ = b"\x41" + bytes(299)
    unit = len(slice_).to_bytes(4, "big") + slice_
    assert unit.startswith(b"\x00\x00\x01")
    assert to_annexb(unit, 4) == START + slice_


def test_annex_b_passes_unchanged_and_a_truncated_unit_is_cut() -> None:
    sets, size = annexb_parameter_sets(START + SPS + b"\x00\x00\x01" + PPS)
    assert size == 0 and split_annexb(sets) == [SPS, PPS]
    assert to_annexb(START + IDR, 0) == START + IDR
    assert to_annexb((100).to_bytes(4, "big") + IDR, 4) == b""
    with pytest.raises(ValueError, match="avcC"):
        annexb_parameter_sets(b"\x02junk-junk")


OFFER = (
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n"
    "a=candidate:2 1 udp 2122194687 192.0.2.2 50001 typ host\r\n"
    "a=candidate:3 1 udp 2122194687 3f2a.local 50002 typ host\r\n"
)


def test_a_loopback_answer_keeps_only_loopback_candidates() -> None:
    kept = filter_candidates(OFFER, _same_scope(("127.0.0.1",)))
    assert "127.0.0.1" in kept and "192.0.2.2" not in kept and ".local" not in kept
    lan = filter_candidates(OFFER, _same_scope(("192.168.1.20",)))
    assert "127.0.0.1" not in lan and "192.0.2.2" in lan and "3f2a.local" in lan


def test_roles() -> None:
    tokens = {Role.PLATFORM: "p", Role.TECHNICIAN: "t", Role.VIEWER: "v"}
    assert [role_of(x, tokens) for x in ("p", "t", "v", "", "x")] == [
        Role.PLATFORM,
        Role.TECHNICIAN,
        Role.VIEWER,
        None,
        None,
    ]
    zones = ("PUT", "/api/v1/cameras/{id}/zones")
    assert [allowed(r, *zones) for r in Role] == [False, True, False]
    ack = ("POST", "/api/v1/incidents/{id}/ack")
    assert allowed(Role.PLATFORM, *ack) and allowed(Role.TECHNICIAN, *ack) and not allowed(Role.VIEWER, *ack)
    assert allowed(Role.VIEWER, "GET", "/api/v1/incidents")
    assert allowed(Role.VIEWER, "POST", "/api/v1/cameras/{id}/live")


class _Viewer:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, bool]] = []

    def push(self, data: bytes, keyframe: bool, t: float) -> None:
        self.got.append((data, keyframe))


async def test_a_new_viewer_gets_the_group_of_pictures_in_progress_first_and_each_unit_once() -> None:
    relay = StreamRelay("cam", asyncio.get_running_loop())
    relay.stream_opened("h264", START + SPS + START + PPS, 160, 120)
    relay.packet(START + b"\x41p0", False)  # before any key frame: undecodable, not kept
    relay.packet(START + IDR, True)
    relay.packet(START + b"\x41p1", False)
    first = _Viewer()
    relay.attach(first)
    assert first.got == [(START + SPS + START + PPS + START + IDR, True), (START + b"\x41p1", False)]
    relay.packet(START + b"\x41p2", False)  # scheduled for the viewers, on the loop
    second = _Viewer()
    relay.attach(second)  # joins after p2 was kept, before the loop fanned it out
    await asyncio.sleep(0)
    assert [u for u, _k in first.got][-1] == START + b"\x41p2"
    assert [u for u, _k in second.got] == [u for u, _k in first.got]  # p2 once, from the kept GOP
    relay.detach(first)
    relay.packet(START + b"\x41p3", False)
    await asyncio.sleep(0)
    assert len(first.got) == 3 and second.got[-1] == (START + b"\x41p3", False)
    assert relay.watching == 1


async def test_a_group_of_pictures_too_long_to_keep_is_dropped_until_the_next_key_frame() -> None:
    relay = StreamRelay("cam", asyncio.get_running_loop())
    relay.stream_opened("h264", START + SPS + START + PPS, 160, 120)
    relay.packet(START + IDR, True)
    relay.packet(START + b"\x41" + bytes(_GOP_BYTES), False)
    late = _Viewer()
    relay.attach(late)
    assert late.got == []  # it waits for the next key frame, as without a kept GOP
    relay.packet(START + IDR, True)
    await asyncio.sleep(0)
    assert late.got and late.got[0][1]
