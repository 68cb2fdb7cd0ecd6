"""The SIP message layer (RFC 3261) the GB/T 28181 channel needs, and HTTP digest (RFC 2617/7616).

Pure code: parsing and building messages, no sockets. Every limit is explicit, and every parse
failure is a :class:`SipParseError` that carries the status to answer with and, when the head
could be read, the request to answer (so a bad body still gets a SIP error, not silence).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "REASONS",
    "Challenge",
    "SipMessage",
    "SipParseError",
    "authorization",
    "content_length",
    "digest_response",
    "granted_expires",
    "new_branch",
    "new_tag",
    "parse_challenge",
    "parse_head",
    "parse_message",
    "reply",
]

MAX_HEAD_BYTES = 16 * 1024
"""Start line plus headers; a real GB/T 28181 head is well under 2 KiB."""
MAX_BODY_BYTES = 256 * 1024
"""A MANSCDP body or an SDP offer; a catalog page of 100 items is about 60 KiB."""

# RFC 3261 7.3.3 compact forms.
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "l": "content-length",
    "c": "content-type",
    "m": "contact",
}
_CANONICAL = {
    "via": "Via",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "content-length": "Content-Length",
    "content-type": "Content-Type",
    "contact": "Contact",
    "www-authenticate": "WWW-Authenticate",
    "max-forwards": "Max-Forwards",
}
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    488: "Not Acceptable Here",
    481: "Call/Transaction Does Not Exist",
    489: "Bad Event",
    501: "Not Implemented",
    500: "Server Internal Error",
    503: "Service Unavailable",
}
"""Reason phrases of the answers the device gives (RFC 3261 21)."""
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")


class SipParseError(ValueError):
    """A message we cannot accept: answer ``status`` (when ``request`` is known) and log ``str(self)``."""

    def __init__(self, message: str, status: int = 400, request: SipMessage | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request = request


@dataclass(slots=True)
class SipMessage:
    """A request (``method`` set) or a response (``status`` set). Header names keep their order."""

    method: str | None = None
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive, compact forms understood)."""
        want = _norm(name)
        return next((v for k, v in self.headers if _norm(k) == want), None)

    def get_all(self, name: str) -> list[str]:
        want = _norm(name)
        return [v for k, v in self.headers if _norm(k) == want]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one (appended when absent)."""
        want = _norm(name)
        kept = [(k, v) for k, v in self.headers if _norm(k) != want]
        self.headers = [*kept, (name, value)]

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header; (0, '') when it is missing or malformed."""
        parts = (self.get("cseq") or "").split()
        if len(parts) != 2 or not parts[0].isdigit():
            return 0, ""
        return int(parts[0]), parts[1].upper()

    def branch(self) -> str | None:
        """The branch parameter of the top Via: the transaction key."""
        via = self.get("via")
        if via is None:
            return None
        m = re.search(r";\s*branch=([^;,\s]+)", via, re.IGNORECASE)
        return None if m is None else m.group(1)

    def encode(self) -> bytes:
        """The wire form, with Content-Length set to the body's length in bytes."""
        start = f"{self.method} {self.uri} SIP/2.0" if self.method else f"SIP/2.0 {self.status} {self.reason}"
        self.set("Content-Length", str(len(self.body)))
        lines = [start, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _norm(name: str) -> str:
    low = name.strip().lower()
    return _COMPACT.get(low, low)


def parse_head(head: bytes) -> SipMessage:
    """Start line and headers (without the blank line). Raises :class:`SipParseError`."""
    if len(head) > MAX_HEAD_BYTES:
        raise SipParseError(f"head of {len(head)} bytes is over {MAX_HEAD_BYTES}", 413)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")  # a header in a local charset: keep the message, headers are ASCII anyway
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    msg = SipMessage()
    if len(parts) == 3 and parts[0] == "SIP/2.0":
        if not (parts[1].isdigit() and len(parts[1]) == 3):
            raise SipParseError(f"bad status line {lines[0][:80]!r}")
        msg.status, msg.reason = int(parts[1]), parts[2]
    elif len(parts) == 3 and parts[2] == "SIP/2.0" and _TOKEN.match(parts[0]):
        msg.method, msg.uri = parts[0].upper(), parts[1]
    else:
        raise SipParseError(f"not a SIP start line: {lines[0][:80]!r}")
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:  # folded continuation (RFC 3261 7.3.1)
            name, value = msg.headers[-1]
            msg.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name.strip()):
            raise SipParseError(f"malformed header line {line[:80]!r}", request=_if_answerable(msg))
        name = name.strip()
        msg.headers.append((_CANONICAL.get(_norm(name), name), value.strip()))
    return msg


def _if_answerable(msg: SipMessage) -> SipMessage | None:
    """The request, if enough of it is known to address a response (RFC 3261 8.2.6.2)."""
    if msg.is_request and all(msg.get(h) for h in ("via", "from", "to", "call-id", "cseq")):
        return msg
    return None


def content_length(msg: SipMessage) -> int:
    """The declared body length. Raises :class:`SipParseError` when it is absent on a stream,
    not a number, or over :data:`MAX_BODY_BYTES` (413)."""
    raw = msg.get("content-length")
    if raw is None:
        return -1
    if not raw.isdigit():
        raise SipParseError(f"Content-Length {raw[:20]!r} is not a number", request=_if_answerable(msg))
    n = int(raw)
    if n > MAX_BODY_BYTES:
        raise SipParseError(
            f"body of {n} bytes is over the {MAX_BODY_BYTES} byte limit", 413, request=_if_answerable(msg)
        )
    return n


def parse_message(data: bytes) -> SipMessage:
    """One whole message, as a UDP datagram carries it. Raises :class:`SipParseError`."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no blank line after the headers")
    msg = parse_head(head.lstrip(b"\r\n"))
    n = content_length(msg)
    if n < 0:
        n = len(body)  # UDP: the datagram ends the body (RFC 3261 18.3)
    if n > len(body):
        raise SipParseError(f"Content-Length {n} but only {len(body)} body bytes arrived", request=_if_answerable(msg))
    msg.body = body[:n]  # extra bytes past Content-Length are dropped (RFC 3261 18.3)
    return msg


def reply(req: SipMessage, status: int, reason: str, *, to_tag: str | None = None) -> SipMessage:
    """A response to ``req`` (RFC 3261 8.2.6): its Vias, From, Call-ID and CSeq, and its To with our tag."""
    out = SipMessage(status=status, reason=reason)
    out.headers = [("Via", v) for v in req.get_all("via")]
    to = req.get("to") or ""
    if to_tag is not None and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    for name, value in (("From", req.get("from") or ""), ("To", to), ("Call-ID", req.get("call-id") or "")):
        out.headers.append((name, value))
    out.headers.append(("CSeq", req.get("cseq") or ""))
    return out


def new_branch() -> str:
    """A Via branch: the RFC 3261 magic cookie and 64 random bits."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


# -- digest --------------------------------------------------------------------------------

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'\s*([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    """A ``WWW-Authenticate: Digest ...`` challenge. ``qop`` is 'auth' or None (RFC 2069 style)."""

    realm: str
    nonce: str
    qop: str | None = None
    algorithm: str = "MD5"
    opaque: str | None = None


def parse_challenge(header: str) -> Challenge:
    """Parse a Digest challenge. Raises ValueError on another scheme, a missing nonce or realm,
    an algorithm other than MD5/SHA-256, or a qop list without 'auth'."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"scheme {scheme!r} is not Digest")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[m.group(1).lower()] = value
    if "nonce" not in params or "realm" not in params:
        raise ValueError("digest challenge without nonce or realm")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        raise ValueError(f"digest algorithm {algorithm!r} is not supported (MD5, SHA-256)")
    qop: str | None = None
    if "qop" in params:
        offered = [q.strip().lower() for q in params["qop"].split(",")]
        if "auth" not in offered:
            raise ValueError(f"digest qop {params['qop']!r} offers no 'auth'")
        qop = "auth"
    return Challenge(params["realm"], params["nonce"], qop, algorithm, params.get("opaque"))


def digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
    algorithm: str = "MD5",
) -> str:
    """The ``response`` value of RFC 2617 section 3.2.2.1 (RFC 7616 3.4.1 for SHA-256)."""
    h = _HASHES[algorithm.upper()]

    def hx(text: str) -> str:
        return h(text.encode("utf-8")).hexdigest()

    ha1 = hx(f"{username}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    if qop is None:
        return hx(f"{ha1}:{nonce}:{ha2}")
    return hx(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def authorization(
    ch: Challenge, *, username: str, password: str, method: str, uri: str, nc: int = 1, cnonce: str | None = None
) -> str:
    """The ``Authorization`` header value answering ``ch``."""
    ncs = f"{nc:08x}"
    cn = secrets.token_hex(8) if cnonce is None else cnonce
    resp = digest_response(
        username=username,
        realm=ch.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=ch.nonce,
        qop=ch.qop,
        nc=ncs,
        cnonce=cn,
        algorithm=ch.algorithm,
    )
    parts = [
        f'username="{username}"',
        f'realm="{ch.realm}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
        f'response="{resp}"',
        f"algorithm={ch.algorithm}",
    ]
    if ch.qop is not None:
        parts += [f"qop={ch.qop}", f"nc={ncs}", f'cnonce="{cn}"']
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)


def granted_expires(resp: SipMessage, asked: int) -> int:
    """The registration lifetime the platform granted: Contact's expires, else Expires, else ours."""
    contact = resp.get("contact") or ""
    m = re.search(r";\s*expires=(\d+)", contact, re.IGNORECASE)
    if m:
        return int(m.group(1))
    raw = resp.get("expires")
    return int(raw) if raw is not None and raw.strip().isdigit() else asked
