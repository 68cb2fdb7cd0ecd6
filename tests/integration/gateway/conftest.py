"""A gateway in-process against a real mosquitto, with a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import gmqtt
from aiohttp import web
from gmqtt.mqtt.constants import MQTTv311

from edge_config import load
from gateway.app import Gateway
from tests.conftest import free_port

TOKEN = "test-token-not-secret"
WEBHOOK_SECRET = b"webhook-key"


def site_toml(
    state_dir: Path,
    mqtt_port: int,
    api_port: int,
    *,
    webhook_port: int | None = None,
    devices: int = 1,
    rules: str = "",
) -> str:
    devs = "".join(
        f"""
[[devices]]
kind = "mqtt"
id = "river-{i:03d}"
broker = "village"
department = "water-affairs"
location = {{ zone = "bridge {i}" }}
  [[devices.points]]
  name = "level"
  topic = "t/river/{i:03d}/level"
  value_path = "v"
  time_path = "ts"
  unit = "m"
"""
        for i in range(devices)
    )
    webhook = (
        f'\n[upstream.webhook]\nurl = "http://127.0.0.1:{webhook_port}/hook"\nsecret = {{ file = "webhook_secret" }}\n'
        f"max_backoff_s = 1\n"
        if webhook_port
        else ""
    )
    rules = (
        rules
        or """
[[rules]]
kind = "threshold"
id = "high"
point = "level"
above = 3.5
hysteresis = 0.2
cooldown_s = 0
update_interval_s = 3600
severity = "major"
"""
    )
    return f"""
state_dir = "{state_dir}"

[site]
box_id = "box-1"
township = "Panlian"
village = "Xinhe"

[api]
port = {api_port}
token = {{ file = "api_token" }}

[outbox]
commit_interval_ms = 2
{webhook}
[[brokers]]
id = "village"
host = "127.0.0.1"
port = {mqtt_port}
{devs}
{rules}
"""


def write_site(tmp_path: Path, mqtt_port: int, **kw: Any) -> tuple[Path, int]:
    api_port = free_port()
    (tmp_path / "api_token").write_text(TOKEN + "\n")
    (tmp_path / "webhook_secret").write_text(WEBHOOK_SECRET.decode() + "\n")
    path = tmp_path / "site.toml"
    path.write_text(site_toml(tmp_path / "state", mqtt_port, api_port, **kw))
    return path, api_port


@dataclass
class Receiver:
    """The platform's webhook endpoint: keeps every body whose signature checks out."""

    port: int
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    content_types: set[str] = field(default_factory=set)
    fail: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=503)
        body = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Signature-256", ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.content_types.add(request.headers.get("Content-Type", ""))
        self.events.append(json.loads(body))
        self.arrived.set()
        return web.Response(status=204)


@asynccontextmanager
async def receiver(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    """The webhook receiver on 127.0.0.1; HTTPS when given a server context."""
    rec = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port, ssl_context=ssl_context).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(site: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(load(site))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await until(lambda: gw.ready.is_set() or task.done(), 10)
        if task.done():
            task.result()
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(cond: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def connected(gw: Gateway, timeout: float = 10) -> None:
    await until(lambda: all(s.health.state.value == "connected" for s in gw.supervisors), timeout, "links connected")


@asynccontextmanager
async def publisher(port: int) -> AsyncIterator[gmqtt.Client]:
    client = gmqtt.Client(f"test-pub-{free_port()}")
    await client.connect("127.0.0.1", port, version=MQTTv311)
    try:
        yield client
    finally:
        await client.disconnect()


async def feed(
    api_port: int, after: int = 0, wait: int = 0, limit: int = 1000, token: str = TOKEN
) -> tuple[int, list[dict[str, Any]]]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        url = f"http://127.0.0.1:{api_port}/api/v1/events?after={after}&wait={wait}&limit={limit}"
        async with s.get(url) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"].startswith("application/cloudevents-batch+json")
            return int(r.headers["X-Next-After"]), json.loads(await r.read())


async def api(api_port: int, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.request(method, f"http://127.0.0.1:{api_port}{path}", json=body) as r,
    ):
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def feed_until(
    api_port: int, after: int, want: Callable[[dict[str, Any]], bool], timeout: float, token: str = TOKEN
) -> tuple[int, list[dict[str, Any]]]:
    """Follow the feed from ``after`` until events matching ``want`` arrive (or ``timeout`` passes).

    Returns the new cursor and the matching events (empty on timeout).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        after, events = await feed(api_port, after=after, wait=5, token=token)
        found = [e for e in events if want(e)]
        if found:
            return after, found
    return after, []
