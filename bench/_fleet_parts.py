"""The fleet bench's pieces: a box as a process, its site file, a cuttable uplink, and the checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
import nats.errors

from bench._peers import free_port

__all__ = [
    "MQTT_PREFIX",
    "PREFIX",
    "STREAM",
    "TOWNSHIP",
    "Box",
    "Proxy",
    "check",
    "committed",
    "leader_of",
    "quiet",
    "ready",
    "site_toml",
    "start",
    "usage",
]

REPO = Path(__file__).resolve().parents[1]
STREAM = "INCIDENTS"
PREFIX = "county"
TOWNSHIP = "panlian"
MQTT_PREFIX = "county-mqtt"


@dataclass
class Box:
    index: int
    dir: Path
    api_port: int
    mqtt_uplink: bool
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def name(self) -> str:
        return f"box-{self.index:03d}"

    @property
    def key(self) -> str:
        return f"{TOWNSHIP}.{self.name}"


class Proxy:
    """A TCP forwarder this process can cut: the stand-in for one box's uplink cable."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._pipes):
            w.transport.abort()
        self._pipes.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()
            self._pipes.discard(w)

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


def site_toml(box: Box, servers: list[str], mqtt_port: int, uplink_mqtt_port: int | None) -> str:
    mqtt_uplink = (
        f'\n[upstream.mqtt]\nbroker = "county"\ntopic_prefix = "{MQTT_PREFIX}"\n'
        f'[[brokers]]\nid = "county"\nhost = "127.0.0.1"\nport = {uplink_mqtt_port}\n'
        if uplink_mqtt_port is not None
        else ""
    )
    return f"""state_dir = "{box.dir / "state"}"

[site]
box_id = "{box.name}"
township = "{TOWNSHIP}"
village = "v{box.index}"

[api]
port = {box.api_port}
token = {{ file = "token" }}

[outbox]
commit_interval_ms = 2

[upstream.nats]
servers = {json.dumps(servers)}
subject_prefix = "{PREFIX}"
max_backoff_s = 5
heartbeat_s = 5
{mqtt_uplink}
[[brokers]]
id = "village"
host = "127.0.0.1"
port = {mqtt_port}

[[devices]]
kind = "mqtt"
id = "river"
broker = "village"
  [[devices.points]]
  name = "level"
  topic = "fleet/{box.name}/level"
  value_path = "v"

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


def start(box: Box) -> None:
    log = (box.dir / "gateway.log").open("ab")
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".venv" / "numba-cache"))}
    box.proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "WARNING", "run", "--config", str(box.dir / "site.toml")],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()


async def ready(boxes: list[Box], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer fleet-token"}) as s:
        for box in boxes:
            while True:
                assert box.proc is not None
                if box.proc.poll() is not None:
                    raise RuntimeError(f"{box.name} exited; see {box.dir / 'gateway.log'}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get(f"http://127.0.0.1:{box.api_port}/readyz") as r:
                        body = await r.json()
                        if r.status == 200 and body["links"].get("upstream:nats") == "connected":
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{box.name} not ready in {timeout:.0f} s")
                await asyncio.sleep(0.2)


def committed(box: Box) -> list[tuple[int, str]]:
    """(seq, CloudEvent id) of every event the box's outbox committed."""
    with contextlib.closing(sqlite3.connect(f"file:{box.dir / 'state' / 'outbox.sqlite3'}?mode=ro", uri=True)) as db:
        return [(int(seq), json.loads(body)["id"]) for seq, body in db.execute("SELECT seq, body FROM events")]


def usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a live process, from /proc."""
    rss = 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    cpu = 0.0
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


async def leader_of(urls: list[str]) -> str:
    nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=2, error_cb=quiet)
    try:
        js = nc.jetstream(timeout=2)
        for _ in range(300):
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.stream_info(STREAM)
                if info.cluster is not None and info.cluster.leader:
                    return info.cluster.leader
            await asyncio.sleep(0.1)
        raise RuntimeError("the stream has no leader")
    finally:
        await nc.close()


async def quiet(_exc: Exception) -> None:
    """nats-py prints every reconnect attempt's traceback unless given a callback; the bench expects them."""


def check(expected: list[tuple[int, str]], got: list[tuple[int, str]]) -> tuple[int, int, int]:
    """(lost, duplicated, out of order) of what one box committed against what arrived, in order."""
    ids = {i for _, i in expected}
    seen: set[str] = set()
    dup = ooo = 0
    last = 0
    for seq, ident in got:
        if ident in seen:
            dup += 1
            continue
        seen.add(ident)
        if seq <= last:
            ooo += 1
        last = max(last, seq)
    return len(ids - seen), dup, ooo
