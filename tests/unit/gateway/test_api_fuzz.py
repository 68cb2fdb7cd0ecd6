"""The API against hostile clients and against its own OpenAPI document, property-based.

Whatever a client sends (bytes in Authorization, bodies in any charset, nesting, huge numbers,
odd integers in the query), the answer is a 4xx that says why, never a 500; and what the document
allows the server takes, what it forbids the server refuses. A real server on loopback, driven
through http.client so that the bytes on the wire are exactly the ones drawn.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_config import load_text
from edge_core.signals import Category, Severity, Signal
from gateway.api import build_app
from gateway.app import Gateway
from tests.sites import one_terminal_site

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPENAPI = json.loads((ROOT / "gateway" / "openapi.json").read_text())
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Server:
    port: int
    incident: str

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, Any] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body or b"")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "token").write_text(TOKEN)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[Gateway, web.AppRunner, int, str]:
        gw = Gateway(load_text(one_terminal_site(tmp / "state"), tmp / "site.toml"))
        gw.outbox.open()
        gw.signal(Signal("river-1", "high", True, time.time(), Category.THRESHOLD_BREACH, Severity.MAJOR, "level"))
        for _ in range(3):
            gw.outbox.append(source="river-1", severity=2, build=lambda seq: b'{"sequence": "%d"}' % seq)
        await gw.outbox.flush()
        runner = web.AppRunner(build_app(gw), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return gw, runner, runner.addresses[0][1], gw.incidents.open[0].id

    gw, runner, port, incident = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield Server(port, incident)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        gw.outbox.close()


# -- hostile inputs: never a 500 -------------------------------------------------------------------

_header_bytes = st.binary(min_size=0, max_size=64).filter(lambda b: not set(b) & {0, 10, 13})


@FAST
@given(scheme=st.sampled_from([b"Bearer ", b"bearer ", b"", b"Basic "]), token=_header_bytes)
def test_any_authorization_header_is_a_401_not_a_500(server: Server, scheme: bytes, token: bytes) -> None:
    status = server.request("GET", "/api/v1/site", headers={"Authorization": scheme + token})
    if scheme.lower() == b"bearer " and token.strip() == TOKEN.encode():
        assert status == 200
    else:
        # 400: aiohttp's parser refuses control characters in a header before we see it.
        assert status in (400, 401), status


_charsets = st.sampled_from(["", "; charset=utf-8", "; charset=UTF-16", "; charset=latin-1", "; charset=x-nope"])
_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["by", "note", "at", "x"]), kids),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"[" * 30_000 + b"]" * 30_000,
            b'{"by": "x", "at": ' + b"9" * 5000 + b"}",
            '{"by": "x"}'.encode("utf-16"),
            b'{"by": "\\ud800"}',
            b'{"by": "x", "note": "\\udfff"}',
            b'{"by": "x", "at": NaN}',
            b'{"by": "x", "at": Infinity}',
            b'{"by": "\xff\xfe"}',
        ]
    ),
)


@FAST
@given(body=_bodies, charset=_charsets, action=st.sampled_from(["ack", "close"]))
def test_any_feedback_body_is_answered_without_a_500(server: Server, body: bytes, charset: str, action: str) -> None:
    headers = {**AUTH, "Content-Type": "application/json" + charset}
    # An unknown incident: a body that passes is a 404, one that does not a 400.
    status = server.request("POST", f"/api/v1/incidents/{'0' * 24}/{action}", body, headers)
    assert status in (400, 404, 413), status


# -- the server and its OpenAPI document agree ---------------------------------------------------

_events = OPENAPI["paths"]["/api/v1/events"]["get"]
_PARAMS = {p["name"]: p["schema"] for p in _events["parameters"]}
_ASCII_INT = re.compile(r"^[0-9]+$")


def _valid(schema: dict[str, Any], raw: str) -> bool:
    """Whether the document allows this query value (an integer, in its bounds)."""
    if not _ASCII_INT.match(raw):
        return False
    try:
        jsonschema.validate(int(raw), schema)
    except jsonschema.ValidationError:
        return False
    return True


_query_values = st.one_of(
    st.integers(-5, 2**63).map(str),
    st.sampled_from(["١٢", "1_000", " 7", "7 ", "+7", "-0", "0x10", "1e3", "", "٣", "0" * 30, "07"]),
    st.text(max_size=8),
)


@FAST
@given(name=st.sampled_from(["after", "limit", "wait", "peek"]), raw=_query_values)
def test_query_integers_are_taken_exactly_when_the_document_allows_them(server: Server, name: str, raw: str) -> None:
    from urllib.parse import quote

    # after=0 with events in the outbox: a long poll answers at once.
    query = f"{name}={quote(raw)}" + ("" if name == "after" else "&after=0")
    if name == "after" and _valid(_PARAMS["after"], raw) and int(raw) > 0:
        query += "&wait=0"
    status = server.request("GET", f"/api/v1/events?{query}", headers=AUTH)
    allowed = _valid(_PARAMS[name], raw)
    # 409: a cursor past the last event, which the document allows and the server answers.
    assert status in ((200, 409) if allowed else (400,)), (name, raw, status)


_feedback_schema = {**OPENAPI["components"]["schemas"]["Feedback"], "additionalProperties": False}


def _from_feedback_schema() -> st.SearchStrategy[dict[str, Any]]:
    """Bodies the document's Feedback schema allows, drawn from its own bounds."""
    props = _feedback_schema["properties"]
    by, note, at = props["by"], props["note"], props["at"]
    return st.fixed_dictionaries(
        {
            "by": st.text(min_size=by["minLength"], max_size=by["maxLength"]).filter(
                lambda s: re.search(by["pattern"], s)
            )
        },
        optional={
            "note": st.text(max_size=note["maxLength"]),
            "at": st.floats(min_value=at["minimum"], max_value=at["exclusiveMaximum"], exclude_max=True)
            | st.integers(at["minimum"], at["exclusiveMaximum"] - 1),
        },
    )


@FAST
@given(body=_from_feedback_schema())
def test_every_feedback_the_document_allows_is_taken(server: Server, body: dict[str, Any]) -> None:
    status = server.request(
        "POST",
        f"/api/v1/incidents/{server.incident}/ack",
        json.dumps(body).encode(),
        {**AUTH, "Content-Type": "application/json"},
    )
    assert status == 200, body


@FAST
@given(
    body=st.dictionaries(
        st.sampled_from(["by", "note", "at"]),
        st.one_of(st.text(max_size=140), st.floats(), st.integers(-(10**15), 10**15), st.booleans(), st.none()),
    )
)
@example(body={"by": "0", "note": "", "at": math.nan})  # found by a clean clone's run
def test_feedback_is_refused_exactly_when_the_document_forbids_it(server: Server, body: dict[str, Any]) -> None:
    try:
        jsonschema.validate(body, _feedback_schema, format_checker=None)
        allowed = True
    except jsonschema.ValidationError:
        allowed = False
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:  # NaN (which passes every bound) is no JSON number (RFC 8259): no document allows it
        allowed = False
    payload = json.dumps(body).encode()
    status = server.request(
        "POST", f"/api/v1/incidents/{server.incident}/ack", payload, {**AUTH, "Content-Type": "application/json"}
    )
    assert status == (200 if allowed else 400), (body, status)
