"""The SIP message layer and digest: RFC examples, round trips, and what bad input raises."""

from __future__ import annotations

import pytest

from gateway.gb28181.sip import (
    MAX_BODY_BYTES,
    Challenge,
    SipMessage,
    SipParseError,
    authorization,
    digest_response,
    parse_challenge,
    parse_message,
    reply,
)


def test_rfc2617_digest_example() -> None:
    # RFC 2617 section 3.5: qop=auth, MD5.
    assert (
        digest_response(
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_digest_examples(algorithm: str, expected: str) -> None:
    # RFC 7616 section 3.9.1.
    assert (
        digest_response(
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            algorithm=algorithm,
        )
        == expected
    )


def test_digest_without_qop_is_rfc2069() -> None:
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    ha1, ha2 = md5("u:r:p"), md5("REGISTER:sip:x@y")
    got = digest_response(username="u", realm="r", password="p", method="REGISTER", uri="sip:x@y", nonce="n")
    assert got == md5(f"{ha1}:n:{ha2}")


def test_challenge_parsing_and_authorization_header() -> None:
    ch = parse_challenge('Digest realm="3402000000",nonce="abc,def", qop="auth,auth-int", algorithm=MD5, opaque="o"')
    assert ch == Challenge("3402000000", "abc,def", "auth", "MD5", "o")
    header = authorization(ch, username="u", password="p", method="REGISTER", uri="sip:a@b", cnonce="c0")
    assert header.startswith("Digest ")
    assert 'nonce="abc,def"' in header and "nc=00000001" in header and 'cnonce="c0"' in header
    assert 'opaque="o"' in header and "qop=auth" in header
    plain = authorization(Challenge("r", "n"), username="u", password="p", method="REGISTER", uri="sip:a@b")
    assert "qop" not in plain and "cnonce" not in plain


@pytest.mark.parametrize(
    "header",
    [
        'Basic realm="x"',
        'Digest nonce="n"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Digest realm="r", nonce="n", qop="auth-int"',
    ],
)
def test_challenges_we_cannot_answer(header: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_challenge(header)


def _request(body: bytes = b"", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (
        "MESSAGE sip:34020000001320000001@3402000000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK1\r\n"
        "f: <sip:34020000002000000001@3402000000>;tag=a\r\n"
        "To: <sip:34020000001320000001@3402000000>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 7 MESSAGE\r\n"
        "Content-Type: Application/MANSCDP+xml\r\n"
        f"Content-Length: {n}\r\n\r\n"
    ).encode() + body


def test_parse_round_trip_and_compact_headers() -> None:
    msg = parse_message(_request(b"<Query/>"))
    assert msg.method == "MESSAGE" and msg.body == b"<Query/>"
    assert msg.get("from") == "<sip:34020000002000000001@3402000000>;tag=a"
    assert msg.cseq == (7, "MESSAGE") and msg.branch() == "z9hG4bK1"
    again = parse_message(msg.encode())
    assert again.headers == msg.headers and again.body == msg.body


def test_content_length_counts_bytes() -> None:
    msg = SipMessage(method="MESSAGE", uri="sip:a@b", body="名称".encode("gb2312"))
    wire = msg.encode()
    assert b"Content-Length: 4\r\n" in wire


def test_reply_keeps_vias_and_tags_the_to() -> None:
    req = parse_message(_request())
    resp = reply(req, 200, "OK", to_tag="t1")
    wire = parse_message(resp.encode())
    assert wire.status == 200 and wire.get("via") == req.get("via")
    assert (
        wire.get(
            "to",
        )
        == "<sip:34020000001320000001@3402000000>;tag=t1"
    )
    assert wire.get("cseq") == "7 MESSAGE"


def test_short_body_is_a_400_with_the_request_to_answer() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(_request(b"<Query/>", length=100))
    assert info.value.status == 400 and info.value.request is not None


def test_huge_content_length_is_a_413() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(_request(b"x", length=10 * 1024 * 1024))
    assert info.value.status == 413 and info.value.request is not None
    assert MAX_BODY_BYTES < 10 * 1024 * 1024


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"MESSAGE sip:a SIP/2.0\r\nno colon here\r\n\r\n",
        b"MESSAGE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"MESSAGE sip:a SIP/2.0\r\n",
        b"\xff\xfe\x00garbage",
    ],
)
def test_malformed_messages_raise_parse_errors(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_extra_bytes_past_content_length_are_dropped() -> None:
    msg = parse_message(_request(b"<Query/>trailing", length=8))
    assert msg.body == b"<Query/>"
