"""The API as a client sees it: the pull feed on a pull-only box (the platform's reads take delivery,
the status page's do not), and errors that say what is wrong."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from edge_config import load_text
from gateway.api import build_app
from gateway.app import Gateway
from tests.sites import one_terminal_site

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "t0ken"
ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    (tmp_path / "token").write_text(TOKEN)
    site = tmp_path / "site.toml"
    gw = Gateway(load_text(one_terminal_site(tmp_path / "state"), site))
    gw.outbox.open()
    for _ in range(5):
        gw.outbox.append(source="river-1", severity=2, build=lambda seq: b'{"sequence": "%d"}' % seq)
    await gw.outbox.flush()
    yield gw
    gw.outbox.close()


async def _get(client: TestClient[web.Request, web.Application], query: str) -> list[object]:
    resp = await client.get(f"/api/v1/events?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    batch: list[object] = await resp.json(content_type=None)
    return batch


async def test_peek_reads_the_feed_without_taking_delivery(gateway: Gateway, aiohttp_client: ClientFactory) -> None:
    assert gateway.outbox.consumers == ("feed",)
    client = await aiohttp_client(build_app(gateway))
    assert len(await _get(client, "after=3&peek=1")) == 2
    # Nothing the platform never pulled counts as delivered, so none of it can be pruned as such.
    assert gateway.outbox.cursor("feed") == 0
    assert len(await _get(client, "after=3")) == 2
    assert gateway.outbox.cursor("feed") == 3


async def test_peek_takes_only_0_or_1(gateway: Gateway, aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(build_app(gateway))
    resp = await client.get("/api/v1/events?after=3&peek=yes", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 400
    assert gateway.outbox.cursor("feed") == 0


def test_the_status_page_reads_the_feed_with_peek() -> None:
    script = (ROOT / "gateway" / "static" / "app.js").read_text()
    reads = re.findall(r"/api/v1/events\?[^\"`]*", script)
    assert reads, "the status page no longer reads the feed?"
    assert all("peek=1" in r for r in reads), reads


async def test_a_cursor_past_the_last_event_says_the_outbox_was_reset(
    gateway: Gateway, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(build_app(gateway))
    assert await _get(client, "after=5&wait=1") == []  # at the head: wait, then nothing new
    # A platform holding cursor 9 from before the box's state was wiped would otherwise wait for
    # event 10 and never see 1 to 9.
    resp = await client.get("/api/v1/events?after=9", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 409
    body = await resp.json(content_type=None)
    assert "outbox was reset; read again from after=0" in body["detail"]
    assert gateway.outbox.cursor("feed") == 5


async def test_a_snapshot_of_an_unknown_camera_says_the_id_is_wrong(
    gateway: Gateway, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(build_app(gateway))
    resp = await client.get("/api/v1/cameras/cam-gaet/snapshot.jpg", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 404
    body = await resp.json(content_type=None)
    assert body["detail"] == "no camera 'cam-gaet' in the site file (GET /api/v1/cameras lists them)"


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer  "])
async def test_an_empty_token_file_locks_the_api_instead_of_opening_it(
    tmp_path: Path, aiohttp_client: ClientFactory, header: str
) -> None:
    (tmp_path / "token").write_text("\n")  # e.g. a failed 'head ... | base64 > api_token'
    gw = Gateway(load_text(one_terminal_site(tmp_path / "state"), tmp_path / "site.toml"))
    client = await aiohttp_client(build_app(gw))
    resp = await client.get("/api/v1/site", headers={"Authorization": header})
    assert resp.status == 401
    body = await resp.json(content_type=None)
    assert body["detail"].startswith("the API token is empty, so the API lets no one in")


@pytest.mark.parametrize("at", ["NaN", "Infinity", "-1", "1e300", "true", '"2026-01-01"'])
async def test_feedback_at_must_be_a_time(gateway: Gateway, aiohttp_client: ClientFactory, at: str) -> None:
    client = await aiohttp_client(build_app(gateway))
    resp = await client.post(
        "/api/v1/incidents/any/ack",
        data='{"by": "platform", "at": ' + at + "}",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json(content_type=None)
    assert body["detail"] == "'note' is text, 'at' epoch seconds (a number from 0 to year 9999)"
