"""A fault campaign: SIGKILLs under load, broker restarts, a flapping webhook, a full disk.

    python -m bench.faults                      # the campaign: 200 kills, 5 broker restarts
    python -m bench.faults --kills 3 --broker-restarts 1 --steady 500   # what the suite runs

Part 1 starts the daemon (``python -m gateway run``) against a real mosquitto and a webhook that
flaps (503 for 2 s, then 204 for 2 s), with readings crossing a threshold on 10 devices all the
time, and kills it with SIGKILL at a random moment of its life (during start-up, compilation from
the cache, or steady running), again and again. After each kill it reads the outbox: every event
seen committed before must still be there, with the same id (``lost_committed``).

Part 2 runs the MQTT driver under its supervisor in this process and restarts mosquitto
(1.5 s down) M times, counting client-id takeovers in mosquitto's log after each recovery, then
sends a steady stream of QoS 1 readings and counts what arrives (``steady_loss_pct``); file
descriptors and RSS of this process are compared before and after the restarts (after one warm-up
restart, so that first-use allocations are not counted).

Part 3 (root only: it mounts a 4 MB tmpfs) runs the gateway in this process on that tmpfs, fills
it to the last byte under load, checks the API still answers, frees it and waits for the outbox to
store again (``disk_full_survived``).

The last line is the summary the issue asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import gmqtt
from aiohttp import web
from gmqtt.mqtt.constants import MQTTv311

from bench._peers import free_port, site_header

REPO = Path(__file__).resolve().parents[1]
_TAKEOVER = "already connected, closing old connection"


class Broker:
    """mosquitto on a fixed loopback port, restartable, logging connections to a file."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            raise SystemExit("mosquitto is not installed: apt install mosquitto (scripts/test does)")
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        self.conf.write_text(
            f"user {user}\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 100000\nlog_dest file {self.log}\nlog_type all\nconnection_messages true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def takeovers(self) -> int:
        return self.log.read_text(errors="replace").count(_TAKEOVER) if self.log.exists() else 0


@contextlib.asynccontextmanager
async def flapping_webhook(period_s: float = 2.0) -> AsyncIterator[int]:
    """A webhook receiver that answers 503 for ``period_s``, then 204 for as long, and so on."""
    port = free_port()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503 if int(time.monotonic() / period_s) % 2 else 204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def _site(state: Path, mqtt_port: int, webhook_port: int | None, devices: int = 10) -> str:
    devs = "".join(
        f'\n[[devices]]\nkind = "mqtt"\nid = "d{i:02d}"\nbroker = "b"\n  [[devices.points]]\n  name = "level"\n'
        f'  topic = "f/{i:02d}/level"\n'
        for i in range(devices)
    )
    hook = "" if webhook_port is None else f'\n[upstream.webhook]\nurl = "http://127.0.0.1:{webhook_port}/hook"\n'
    return (
        site_header(state)
        + hook
        + f'\n[[brokers]]\nid = "b"\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        + devs
        + '\n[[rules]]\nkind = "threshold"\nid = "high"\npoint = "level"\nabove = 3.5\ncooldown_s = 0\n'
        "update_interval_s = 3600\n"
    )


async def _load(port: int, stop: asyncio.Event, devices: int = 10, rate: float = 200.0) -> None:
    """Readings crossing the threshold on every device, ``rate`` a second, across broker restarts."""
    while not stop.is_set():
        client = gmqtt.Client(f"bench-load-{random.getrandbits(32):08x}")
        try:
            await client.connect("127.0.0.1", port, version=MQTTv311)
            n = 0
            while not stop.is_set() and client.is_connected:
                n += 1
                client.publish(f"f/{n % devices:02d}/level", b"4.0" if (n // devices) % 2 else b"2.0", qos=0)
                await asyncio.sleep(1.0 / rate)
        except Exception:  # the broker is restarting: connect again
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()


def _committed(db: Path) -> dict[int, str]:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return {seq: json.loads(body)["id"] for seq, body in conn.execute("SELECT seq, body FROM events")}


async def _healthy(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def kill_campaign(kills: int, workdir: Path) -> tuple[int, int, int]:
    """(kills done, committed events lost, events committed in all)."""
    broker = Broker(workdir)
    broker.start()
    state = workdir / "state"
    (workdir / "token").write_text("bench-token\n")
    stop = asyncio.Event()
    lost = 0
    seen: dict[int, str] = {}
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".venv" / "numba-cache"))}
    try:
        async with flapping_webhook() as hook_port:
            site = workdir / "site.toml"
            text = _site(state, broker.port, hook_port)
            site.write_text(text)
            api_port = int(text.split("port = ", 1)[1].split("\n", 1)[0])
            load = asyncio.create_task(_load(broker.port, stop))
            async with aiohttp.ClientSession() as session:
                for i in range(kills):
                    proc = _spawn(site, env)
                    deadline = time.monotonic() + 30
                    while not await _healthy(session, api_port) and time.monotonic() < deadline and proc.poll() is None:
                        await asyncio.sleep(0.05)
                    # Anywhere from start-up through kernel loading to steady running.
                    await asyncio.sleep(random.uniform(0.0, 2.0))
                    proc.send_signal(signal.SIGKILL)
                    await asyncio.to_thread(proc.wait, 10)
                    now = await asyncio.to_thread(_committed, state / "outbox.sqlite3")
                    gone = [s for s, eid in seen.items() if now.get(s) != eid]
                    lost += len(gone)
                    seen = now
                    if (i + 1) % 20 == 0:
                        print(f"  {i + 1} kills, {len(seen)} events committed, lost {lost}", flush=True)
            stop.set()
            await load
    finally:
        broker.stop()
    if (state / "outbox.sqlite3").exists():
        with contextlib.closing(sqlite3.connect(state / "outbox.sqlite3")) as conn:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                lost += 1
                print("  outbox integrity check FAILED", flush=True)
    return kills, lost, len(seen)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def broker_campaign(restarts: int, steady: int, workdir: Path) -> tuple[int, int, float, int, float]:
    """(restarts, takeovers after recovery, steady loss %, FD growth, RSS growth MB)."""
    from drivers.base import Reading
    from drivers.mqtt import MqttDriver
    from edge_config.mqtt import MqttBroker, MqttDevice, MqttPoint
    from edge_core.backoff import Backoff
    from gateway.metrics import Metrics
    from gateway.supervisor import Supervisor

    broker = Broker(workdir)
    broker.start()
    cfg = MqttBroker(id="b", host="127.0.0.1", port=broker.port, keepalive_s=5)
    dev = MqttDevice(kind="mqtt", id="d", broker="b", points=[MqttPoint(name="level", topic="s/level")])
    drv = MqttDriver(cfg, [dev], client_id="bench-faults-b", password=None, on_malformed=lambda _r: None)
    got: list[Reading] = []
    sup = Supervisor(drv.name, functools.partial(drv.run, got.append), Metrics(), backoff=Backoff(0.2, 1.0))
    task = asyncio.create_task(sup.run())

    async def connected() -> None:
        for _ in range(300):
            if sup.health.state.value == "connected":
                return
            await asyncio.sleep(0.05)
        raise SystemExit("the MQTT driver did not connect")

    async def restart() -> None:
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(broker.start)
        await asyncio.sleep(0.1)
        await connected()
        # gmqtt's own reconnect (the one that took over) fired 6 s after a loss.
        await asyncio.sleep(7.0)

    try:
        await connected()
        await restart()  # warm-up: first-use allocations are not growth
        fd0, rss0 = _fds(), _rss_mb()
        takeovers0 = broker.takeovers()
        for _ in range(restarts):
            await restart()
        takeovers = broker.takeovers() - takeovers0
        got.clear()
        client = gmqtt.Client("bench-steady-publisher")
        await client.connect("127.0.0.1", broker.port, version=MQTTv311)
        for i in range(steady):
            client.publish("s/level", str(i).encode(), qos=1)
            await asyncio.sleep(0.002)
        for _ in range(100):
            if len(got) >= steady:
                break
            await asyncio.sleep(0.05)
        await client.disconnect()
        loss = 100.0 * max(0, steady - len({r.value for r in got})) / steady
        fd_growth, rss_growth = _fds() - fd0, _rss_mb() - rss0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        broker.stop()
    return restarts, takeovers, loss, fd_growth, rss_growth


def _spawn(site: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(site)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def mount_tmpfs(state: Path) -> str | None:
    """Mount a 4 MB tmpfs on ``state`` (a real ENOSPC, with nothing else on that disk); None when
    mounted, else why not. Undo with :func:`umount`."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs for a real ENOSPC needs root (run as root, e.g. in CI)"
    cmd = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)]
    done = subprocess.run(cmd, capture_output=True, check=False)
    return None if done.returncode == 0 else f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"


def umount(state: Path) -> None:
    subprocess.run(["umount", "-l", str(state)], check=False)


def fill_disk(directory: Path) -> Path:
    """Fill the file system under ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


async def disk_campaign(workdir: Path) -> str:
    """'yes' if the gateway lived through a full state disk and stored again after; 'skipped' if
    this user cannot mount a tmpfs."""
    from edge_config import load
    from gateway.app import Gateway

    state = workdir / "state"
    state.mkdir()
    if mount_tmpfs(state) is not None:
        return "skipped"
    broker = Broker(workdir)
    broker.start()
    (workdir / "token").write_text("bench-token\n")
    site = workdir / "site.toml"
    text = _site(state, broker.port, None)
    site.write_text(text)
    api_port = int(text.split("port = ", 1)[1].split("\n", 1)[0])
    stop, load_stop = asyncio.Event(), asyncio.Event()
    survived = False
    try:
        gw = Gateway(load(site))
        run = asyncio.create_task(gw.run(stop))
        for _ in range(600):
            if gw.ready.is_set() or run.done():
                break
            await asyncio.sleep(0.05)
        load_task = asyncio.create_task(_load(broker.port, load_stop))
        await asyncio.sleep(1.0)
        filler = await asyncio.to_thread(fill_disk, state)
        full_seen, api_up = False, True
        async with aiohttp.ClientSession() as session:
            # 3 s with the disk full (the outbox may store again for a moment when truncating its
            # log frees room, and fill it again): the API must answer all along.
            for _ in range(30):
                full_seen = full_seen or gw.outbox.storage_full is not None
                api_up = api_up and await _healthy(session, api_port)
                await asyncio.sleep(0.1)
        filler.unlink()
        for _ in range(200):
            if gw.outbox.storage_full is None or run.done():
                break
            await asyncio.sleep(0.05)
        before = gw.outbox.committed_seq
        await asyncio.sleep(2.0)
        survived = full_seen and api_up and not run.done() and gw.outbox.storage_full is None
        survived = survived and gw.outbox.committed_seq > before
        load_stop.set()
        await load_task
        stop.set()
        await asyncio.wait_for(run, 20)
    finally:
        broker.stop()
        umount(state)
    return "yes" if survived else "no"


async def campaign(kills: int, restarts: int, steady: int, disk: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("kills", "broker", "disk"):
            (root / sub).mkdir()
        print(f"part 1: {kills} SIGKILLs under load, webhook flapping", flush=True)
        t0 = time.monotonic()
        n, lost, committed = await kill_campaign(kills, root / "kills")
        print(f"  {n} kills in {time.monotonic() - t0:.0f} s, {committed} events committed, {lost} lost", flush=True)
        print(f"part 2: {restarts} broker restarts, then {steady} steady QoS 1 readings", flush=True)
        m, takeovers, loss, fd_growth, rss_growth = await broker_campaign(restarts, steady, root / "broker")
        print("part 3: a full state disk" + ("" if disk else " (not run)"), flush=True)
        disk_result = await disk_campaign(root / "disk") if disk else "skipped"
    return (
        f"kills: {n} lost_committed: {lost} broker_restarts: {m} takeovers_after_recovery: {takeovers} "
        f"steady_loss_pct: {loss:.2f} fd_growth: {fd_growth} rss_growth_mb: {rss_growth:.1f} "
        f"disk_full_survived: {disk_result}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--broker-restarts", type=int, default=5)
    ap.add_argument("--steady", type=int, default=5000, help="QoS 1 readings sent after the restarts")
    ap.add_argument("--no-disk", action="store_true", help="skip the full-disk part")
    args = ap.parse_args()
    print(asyncio.run(campaign(args.kills, args.broker_restarts, args.steady, not args.no_disk)), flush=True)


if __name__ == "__main__":
    main()
