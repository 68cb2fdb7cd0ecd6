"""Readings/s from an OPC-UA server through the whole daemon (detectors, rules, incidents) into
the outbox, and latency from a breaching write to the durable commit of its incident event.

Usage: ``python -m bench.opcua_gateway [--points N] [--seconds S] [--rates R,R,...] [--warmup S]``.

The server is ``bench.opcua_ingest``'s: an asyncua server in its own process with ``N`` Double
variables written round-robin at a paced rate, each write stamped with its source timestamp. The
values here are a slow sine around 50 with a little deterministic noise, except that every
``BREACH_EVERY``-th write of each variable is a spike to 150; the write after it is normal again.

The gateway is the real :class:`gateway.app.Gateway` in this process, built from a site TOML in a
temporary directory: one ``kind = "opcua"`` device with the ``N`` points (one subscription,
publishing interval ``--publish-ms``, sampling interval 0, queue size 64 per item, as in
``bench.opcua_ingest``), and per point an ``anomaly`` rule (the default ensemble detector) and a
``threshold`` rule ``above = 100`` with ``cooldown_s = 0``. So 1 write in ``BREACH_EVERY`` opens a
threshold incident and the next resolves it: 2 threshold events per ``BREACH_EVERY`` readings.
The anomaly rules add their own events (an incident per point at most, open for 600 s, with
rate-limited updates and an evidence update); they are counted apart.

First a warm-up phase writes as fast as it can for ``--warmup`` seconds (detectors past their
warm-up, first anomaly incidents and their evidence plots made). Then, per
offered rate, then ``max``: writes for ``S`` seconds, waits for readings still in flight and for
the outbox to commit what was appended. The warm-up row is printed too (it is where the
detectors learn) but never used for the last line. Per phase the table shows writes/s offered, readings/s
evaluated by the gateway (``gw.metrics.readings``), readings lost, threshold and anomaly events
committed/s, latency from the source timestamp of a breaching write to the commit of the
``opened`` event it caused (p50/p99/max; the event carries the reading's time to the
millisecond), and the gateway process's CPU µs per reading (all its threads: driver, rules,
detectors, incidents, envelopes, SQLite commits, evidence plots). The last line is
``readings/s: N  p50_ms: X  p99_ms: Y`` for the fastest paced phase evaluated without loss.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import multiprocessing as mp
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from bench._peers import free_port, site_header
from bench.ingest import _machine
from bench.opcua_ingest import NAMESPACE, phase_arguments, serve

BREACH_EVERY = 20
LIMIT = 100.0
DEVICE = "bench-plc"


def bench_value(point: int, n: int) -> float:
    """The ``n``-th write (1-based) of variable ``point``: a spike above LIMIT every BREACH_EVERY
    writes, otherwise a slow sine around 50 with +-0.5 of deterministic noise."""
    if n % BREACH_EVERY == 0:
        return 150.0
    return 50.0 + 10.0 * math.sin(2 * math.pi * n / 200 + point) + ((n * 7919 + point * 104729) % 1001) / 1000 - 0.5


def site_toml(state: Path, port: int, points: int, publish_ms: float) -> str:
    """The bench site: one OPC-UA device with ``points`` points, an anomaly and a threshold rule on each."""
    pts = "".join(
        f'  [[devices.points]]\n  name = "p{i}"\n  node_id = "nsu={NAMESPACE};s=P{i}"\n'
        f"  sampling_interval_ms = 0\n  publishing_interval_ms = {publish_ms:g}\n  queue_size = 64\n"
        for i in range(points)
    )
    rules = "".join(
        f'[[rules]]\nkind = "anomaly"\nid = "anomaly-p{i}"\npoint = "p{i}"\n\n'
        f'[[rules]]\nkind = "threshold"\nid = "high-p{i}"\npoint = "p{i}"\nabove = {LIMIT:g}\n'
        f"cooldown_s = 0\nupdate_interval_s = 3600\n\n"
        for i in range(points)
    )
    return (
        site_header(state)
        + f"""
[[devices]]
kind = "opcua"
id = "{DEVICE}"
endpoint = "opc.tcp://127.0.0.1:{port}/bench"
timeout_s = 10
watchdog_s = 5
{pts}
{rules}"""
    )


@dataclass(frozen=True)
class Row:
    label: str
    elapsed: float
    written: int
    readings: int
    cpu_s: float
    threshold_events: int = 0
    anomaly_events: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan

    @property
    def offered(self) -> float:
        return self.written / self.elapsed

    @property
    def rate(self) -> float:
        return self.readings / self.elapsed

    @property
    def lost(self) -> int:
        return max(0, self.written - self.readings)


HEADER = (
    f"{'phase':>8} {'offered/s':>10} {'readings/s':>11} {'lost':>6} {'thr_ev/s':>9} {'anom_ev':>8} "
    f"{'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8} {'cpu_us/rd':>9}"
)


def format_row(r: Row) -> str:
    return (
        f"{r.label:>8} {r.offered:10.0f} {r.rate:11.0f} {r.lost:6d} {r.threshold_events / r.elapsed:9.1f} "
        f"{r.anomaly_events:8d} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.max_ms:8.1f} "
        f"{r.cpu_s / r.readings * 1e6 if r.readings else math.nan:9.1f}"
    )


def _quantile(sorted_xs: list[float], q: float) -> float:
    if not sorted_xs:
        return math.nan
    return sorted_xs[min(len(sorted_xs) - 1, int(q * (len(sorted_xs) - 1) + 0.5))]


def _total(counts: dict[str, int]) -> int:
    return int(sum(counts.values()))


async def run(
    points: int,
    rates: list[float],
    seconds: float,
    warmup: float,
    publish_ms: float,
    settle_s: float,
    *,
    max_phase: bool = True,
) -> list[Row]:
    """Run the phases; returns one row per phase, the warm-up first and ``max`` last."""
    from edge_config import load
    from gateway.app import Gateway
    from gateway.outbox import Outbox

    # Which phase each committed event belongs to, and when its commit returned.
    phase = ["start"]
    commits: list[tuple[float, str, list[int]]] = []
    original = Outbox._commit_batch

    def timed_commit(self: Outbox, *args: Any, **kwargs: Any) -> int:
        dropped = original(self, *args, **kwargs)
        events = args[0] if args else kwargs.get("events", [])
        if events:
            commits.append((time.time(), phase[0], [e.seq for e in events]))
        return dropped

    ctx = mp.get_context("spawn")
    commands: Queue[Any] = ctx.Queue()
    results: Queue[Any] = ctx.Queue()
    port = free_port()
    proc = ctx.Process(target=serve, args=(port, points, None, commands, results, bench_value), daemon=True)
    proc.start()
    Outbox._commit_batch = timed_commit  # type: ignore[method-assign]
    measured: list[tuple[str, float, int, int, float]] = []
    try:
        ready = await asyncio.to_thread(results.get, True, 60)
        assert ready[0] == "ready", ready
        with tempfile.TemporaryDirectory(prefix="opcua-gw-bench-") as tmp:
            d = Path(tmp)
            (d / "token").write_text("x")
            (d / "site.toml").write_text(site_toml(d / "state", port, points, publish_ms))
            gw = Gateway(load(d / "site.toml"))
            stop = asyncio.Event()
            task = asyncio.create_task(gw.run(stop), name="bench.gateway")
            deadline = time.monotonic() + 120
            while not gw.supervisors or not all(s.health.state.value == "connected" for s in gw.supervisors):
                if task.done():
                    task.result()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the OPC-UA link did not connect: {gw.supervisors[0].health.last_error}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # initial values
            counts = gw.metrics.readings.values
            plan = ([("warm-up", 0.0, warmup)] if warmup > 0 else []) + [
                (f"{r:g}/s" if r > 0 else "max", r, seconds) for r in [*rates, *([0.0] if max_phase else [])]
            ]
            for label, rate, secs in plan:
                phase[0] = label
                c0, cpu0 = _total(counts), time.process_time()
                commands.put(("run", rate, secs))
                _, written, elapsed = await asyncio.to_thread(results.get)
                # Readings still in flight: until all arrived, or none came for settle_s.
                seen, quiet_since = _total(counts), time.perf_counter()
                while _total(counts) - c0 < written and time.perf_counter() - quiet_since < settle_s:
                    await asyncio.sleep(0.05)
                    if _total(counts) != seen:
                        seen, quiet_since = _total(counts), time.perf_counter()
                await gw.outbox.flush()
                measured.append((label, elapsed, written, _total(counts) - c0, time.process_time() - cpu0))
                print(f"{label:>8} written {written} in {elapsed:.1f} s", flush=True)
            phase[0] = "stop"
            stop.set()
            await task
            db = sqlite3.connect(d / "state" / "outbox.sqlite3")
            bodies = {seq: json.loads(body) for seq, body in db.execute("SELECT seq, body FROM events")}
            db.close()
    finally:
        Outbox._commit_batch = original  # type: ignore[method-assign]
        commands.put(("stop",))
        await asyncio.to_thread(proc.join, 10)
        if proc.is_alive():
            proc.kill()
    rows = []
    for label, elapsed, written, readings, cpu in measured:
        thr = anom = 0
        lat: list[float] = []
        for t_commit, ph, seqs in commits:
            if ph != label:
                continue
            for seq in seqs:
                ev = bodies.get(seq)
                if ev is None:
                    continue
                if ev["category"] == "threshold-breach":
                    thr += 1
                    if ev["type"].endswith(".opened"):
                        t_source = datetime.fromisoformat(ev["data"]["updated_at"].replace("Z", "+00:00")).timestamp()
                        lat.append((t_commit - t_source) * 1000)
                elif ev["category"] == "sensor-anomaly":
                    anom += 1
        lat.sort()
        rows.append(
            Row(
                label,
                elapsed,
                written,
                readings,
                cpu,
                thr,
                anom,
                _quantile(lat, 0.50),
                _quantile(lat, 0.99),
                lat[-1] if lat else math.nan,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = phase_arguments("python -m bench.opcua_gateway", __doc__ or "", 10.0, [1000.0, 2000.0, 5000.0, 10000.0])
    p.add_argument("--warmup", type=float, default=8.0, help="unreported warm-up phase at max rate (default 8 s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"machine: {_machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"points: {args.points}  phase: {args.seconds:g} s  warm-up: {args.warmup:g} s  "
        f"publishing interval: {args.publish_ms:g} ms  breach: 1 write in {BREACH_EVERY} "
        f"(expected threshold events/s = readings/s / {BREACH_EVERY // 2})",
        flush=True,
    )
    rows = asyncio.run(run(args.points, args.rates, args.seconds, args.warmup, args.publish_ms, args.settle))
    print(HEADER)
    for r in rows:
        print(format_row(r))
    clean = [r for r in rows if r.label not in ("warm-up", "max") and r.lost == 0]
    best = max(clean, key=lambda r: r.rate) if clean else rows[-1]
    print(f"readings/s: {best.rate:.0f}  p50_ms: {best.p50_ms:.1f}  p99_ms: {best.p99_ms:.1f}")


if __name__ == "__main__":
    main()
