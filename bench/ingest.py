"""Readings/s from mosquitto through rules into the outbox, and outbox commits/s.

    python -m bench.ingest [--devices 200] [--seconds 10] [--publishers 2] [--rate N] [--events 20000]

Part 1: publisher processes send JSON readings to a real mosquitto (QoS 0); the gateway (in this
process) parses them, runs the rules, and commits the incident events that 1 reading in 50
causes. First the publishers go flat out, which measures the gateway's capacity (readings/s it
evaluates while saturated). Then they are paced at --rate (default: 80% of that capacity), where
latency means something: from the publish timestamp in each payload to the durable commit of the
event it caused (p50/p99), and the share of readings that arrived.

Part 2, same run: committing incident events (CloudEvents built by the SDK) through the outbox's
group commit, against the naive one-transaction-per-event insert with the same SQLite settings.

The last line is: readings/s: N  p99_ms: X  outbox_events/s: M
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._peers import mosquitto, site_header

BREACH_EVERY = 50


def _site(state: Path, mqtt_port: int, devices: int) -> str:
    devs = "".join(
        f'\n[[devices]]\nkind = "mqtt"\nid = "d{i}"\nbroker = "b"\n'
        f'  [[devices.points]]\n  name = "v"\n  topic = "bench/d{i}/v"\n  value_path = "v"\n  time_path = "ts"\n'
        for i in range(devices)
    )
    return (
        site_header(state)
        + f"""
[[brokers]]
id = "b"
host = "127.0.0.1"
port = {mqtt_port}
qos = 0
max_payload_bytes = 4096
{devs}
[[rules]]
kind = "threshold"
id = "high"
point = "v"
above = 100
cooldown_s = 0
update_interval_s = 3600
"""
    )


def _publisher(
    port: int,
    offset: int,
    stride: int,
    devices: int,
    seconds: float,
    rate: float,
    sent: Any,  # a multiprocessing.Value("q"): the count it published
    cpus: set[int] | None,
) -> None:
    import gmqtt

    if cpus:
        os.sched_setaffinity(0, cpus)
    from gmqtt.mqtt.constants import MQTTv311

    async def go() -> None:
        c = gmqtt.Client(f"bench-pub-{offset}")
        await c.connect("127.0.0.1", port, version=MQTTv311)
        n = 0
        start = time.time()
        end = start + seconds
        per = devices // stride
        topics = [f"bench/d{offset + i * stride}/v" for i in range(per)]
        while time.time() < end:
            # One timestamp per batch keeps the publisher cheap; batches take well under 1 ms.
            ts = time.time()
            low, high = b'{"v": 50.0, "ts": %.6f}' % ts, b'{"v": 150.0, "ts": %.6f}' % ts
            for _ in range(200):
                # Every BREACH_EVERY-th reading of a device flips it over or back under the limit.
                c.publish(topics[n % per], high if ((n // per) // BREACH_EVERY) % 2 else low, qos=0)
                n += 1
            # Paced mode: wait until this batch is due; flat out: just let the loop breathe.
            await asyncio.sleep(max(0.0, start + n / rate - time.time()) if rate else 0)
        await asyncio.sleep(0.5)
        await c.disconnect()
        sent.value = n

    asyncio.run(go())


async def _ingest(
    devices: int, seconds: float, publishers: int, rate: float, pin: bool = False
) -> tuple[float, float, float, int, int]:
    from edge_config import load
    from gateway.app import Gateway
    from gateway.outbox import Outbox

    commit_log: list[tuple[float, int, int]] = []
    original = Outbox._commit_batch

    def timed_commit(self: Outbox, events, rows, cursors, kv):  # type: ignore[no-untyped-def]
        dropped = original(self, events, rows, cursors, kv)
        if events:
            commit_log.append((time.time(), events[0].seq, events[-1].seq))
        return dropped

    Outbox._commit_batch = timed_commit  # type: ignore[method-assign]
    # --pin: the gateway gets the last core to itself; broker and publishers share the others, as
    # on a box whose terminals publish from elsewhere on the LAN.
    all_cpus = sorted(os.sched_getaffinity(0))
    peer_cpus = set(all_cpus[:-1]) if pin and len(all_cpus) > 1 else None
    if peer_cpus:
        os.sched_setaffinity(0, {all_cpus[-1]})
    with mosquitto(peer_cpus) as port, tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "token").write_text("x")
        (d / "site.toml").write_text(_site(d / "state", port, devices))
        gw = Gateway(load(d / "site.toml"))
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        while not all(s.health.state.value == "connected" for s in gw.supervisors) or not gw.supervisors:
            await asyncio.sleep(0.05)
        counter = gw.metrics.readings
        ctx = mp.get_context("spawn")
        sent = [ctx.Value("q", 0) for _ in range(publishers)]
        procs = [
            ctx.Process(
                target=_publisher, args=(port, i, publishers, devices, seconds, rate / publishers, sent[i], peer_cpus)
            )
            for i in range(publishers)
        ]
        for p in procs:
            p.start()
        # Measure the steady middle: skip the first second of start-up.
        await asyncio.sleep(1.5)
        c0, t0 = _total(counter), time.monotonic()
        await asyncio.sleep(seconds - 2.0)
        c1, t1 = _total(counter), time.monotonic()
        for p in procs:
            await asyncio.to_thread(p.join)
        await asyncio.sleep(1.0)
        received = int(_total(counter))
        stop.set()
        await task
        db = sqlite3.connect(d / "state" / "outbox.sqlite3")
        event_time = {
            seq: json.loads(body)["data"]["updated_at"] for seq, body in db.execute("SELECT seq, body FROM events")
        }
    Outbox._commit_batch = original  # type: ignore[method-assign]
    os.sched_setaffinity(0, all_cpus)
    from datetime import datetime

    lat = []
    for t_commit, first, last in commit_log:
        for seq in range(first, last + 1):
            if seq in event_time:
                t_event = datetime.fromisoformat(event_time[seq].replace("Z", "+00:00")).timestamp()
                lat.append((t_commit - t_event) * 1000)
    rate = (c1 - c0) / (t1 - t0)
    total_sent = sum(s.value for s in sent)
    lat.sort()
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    return rate, p50, p99, total_sent, received


def _total(counter: object) -> float:
    return float(sum(counter.values.values()))  # type: ignore[attr-defined]


async def _outbox_rate(n: int) -> tuple[float, float, float]:
    """(group-commit events/s with envelopes built, group-commit events/s of ready bodies, naive events/s)."""
    from edge_core.signals import Category, Severity, Signal
    from gateway.envelope import incident_event
    from gateway.incidents import EventKind, Incident, IncidentManager, RoutingPolicy
    from gateway.metrics import Metrics
    from gateway.outbox import Outbox

    mgr = IncidentManager(default_department="x", policy_for=lambda _r: RoutingPolicy(0, 3600))
    changes: list[tuple[EventKind, Incident, float]] = []
    for i in range(n):
        sig = Signal(
            device=f"d{i % 100}",
            rule="r",
            active=(i // 100) % 2 == 0,
            time=time.time(),
            category=Category.THRESHOLD_BREACH,
            severity=Severity.MAJOR,
            point="v",
            value=1.0,
        )
        c = mgr.apply(sig)
        if c is not None and c.kind is not None:
            # A snapshot of the incident as it was at this step, as the daemon would serialise it.
            changes.append((c.kind, copy.copy(c.incident), c.time))
    place = {"box_id": "bench", "township": "t", "village": "v"}

    def envelope(change: tuple[EventKind, Incident, float], seq: int) -> bytes:
        kind, inc, t = change
        return incident_event(seq=seq, kind=kind, incident=inc, source="s", place=place, time=t)

    async def group(build_envelopes: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            ob = Outbox(
                Path(tmp) / "o.sqlite3",
                budget_bytes=1 << 34,
                keep_delivered_s=1,
                commit_interval_s=0.0,
                consumers=["feed"],
                metrics=Metrics(),
            )
            ob.open()
            writer = asyncio.create_task(ob.run())
            ready = [envelope(c, i) for i, c in enumerate(changes)]
            t0 = time.perf_counter()
            for i, c in enumerate(changes):
                build = functools.partial(envelope, c) if build_envelopes else _constant(ready[i])
                ob.append(source="s", severity=2, build=build)
                if i % 500 == 0:
                    await asyncio.sleep(0)  # let commits run while events keep arriving
            await ob.flush()
            dt = time.perf_counter() - t0
            writer.cancel()
            ob.close()
            return len(changes) / dt

    with_env = await group(True)
    bodies_only = await group(False)
    bodies = [envelope(c, i) for i, c in enumerate(changes)]
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "naive.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT, severity INTEGER, created REAL, body BLOB)"
        )
        m = min(len(bodies), 2000)  # the naive path is slow; a sample is enough for its rate
        t0 = time.perf_counter()
        for i in range(m):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (i, "s", 2, time.time(), bodies[i]))
            conn.execute("COMMIT")
        naive = m / (time.perf_counter() - t0)
        conn.close()
    return with_env, bodies_only, naive


def _constant(body: bytes) -> Callable[[int], bytes]:
    return lambda _seq: body


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0.0, help="paced total readings/s (default: 80%% of capacity)")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument(
        "--pin", action="store_true", help="give the gateway a core of its own; broker and publishers share the rest"
    )
    args = ap.parse_args()
    print(f"machine: {_machine()}")
    capacity, _, _, sent_max, recv_max = asyncio.run(
        _ingest(args.devices, args.seconds, args.publishers, 0.0, args.pin)
    )
    rate = args.rate or 0.8 * capacity
    paced, p50, p99, sent, received = asyncio.run(_ingest(args.devices, args.seconds, args.publishers, rate, args.pin))
    print(f"{'stage':<48}{'value':>14}")
    print(f"{'flat out: readings published':<48}{sent_max:>14,}")
    print(f"{'flat out: readings evaluated':<48}{recv_max:>14,}")
    print(f"{'flat out: capacity, readings/s':<48}{capacity:>14,.0f}")
    print(f"{'paced: target readings/s':<48}{rate:>14,.0f}")
    print(f"{'paced: evaluated readings/s (steady window)':<48}{paced:>14,.0f}")
    print(f"{'paced: readings arrived / published':<48}{received / max(sent, 1):>14.3f}")
    print(f"{'paced: publish -> event committed p50 ms':<48}{p50:>14.1f}")
    print(f"{'paced: publish -> event committed p99 ms':<48}{p99:>14.1f}")
    with_env, bodies_only, naive = asyncio.run(_outbox_rate(args.events))
    print(f"{'outbox group commit, envelopes built, ev/s':<48}{with_env:>14,.0f}")
    print(f"{'outbox group commit, bodies ready, ev/s':<48}{bodies_only:>14,.0f}")
    print(f"{'naive one transaction per event, ev/s':<48}{naive:>14,.0f}")
    print(f"{'ratio group commit (envelopes built) / naive':<48}{with_env / naive:>14.1f}")
    print(f"readings/s: {paced:.0f}  p99_ms: {p99:.1f}  outbox_events/s: {with_env:.0f}")


if __name__ == "__main__":
    main()
