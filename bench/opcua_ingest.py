"""Readings/s through the OPC-UA driver, and notification latency from server write to sink.

Usage: ``python -m bench.opcua_ingest [--points N] [--seconds S] [--rates R,R,...] [--security MODE]``.

A local asyncua server runs in its own process (as a PLC would be another machine) with ``N``
Double variables. For each offered rate it writes the variables round-robin, paced, for ``S``
seconds; every write carries its source timestamp (wall clock just before the write) and a value
counting up per variable. The gateway side is :class:`drivers.opcua.OpcUaDriver` exactly as the
daemon runs it, with one subscription (publishing interval ``--publish-ms``, sampling interval 0,
queue size 64 per item so that no write is coalesced) and a sink that counts readings and records
``time.time() - reading.time``. A last phase writes as fast as the server can (``max``).

Per phase the table shows writes/s offered, readings/s delivered, readings lost (writes not
delivered), latency p50/p99/max, and the gateway process's CPU time per reading (``cpu_us/rd``,
all its threads, including the settle wait; 1e6 / cpu_us/rd is the driver's ceiling on one core).
Latency includes up to one publishing interval of waiting by design. The last line is
``readings/s: N  p50_ms: X  p99_ms: Y`` for the fastest paced phase delivered without loss.
Figures are printed, never asserted; the sink does no work, so this is the driver's own ceiling
(detectors and the outbox come after it in the daemon).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing as mp
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from drivers.base import Reading
from drivers.opcua import OpcUaDriver
from edge_config.opcua import OpcUaDevice

NAMESPACE = "urn:township-edge:bench"
TICK_S = 0.005


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the server process ---------------------------------------------------------------------


def count_up(_point: int, n: int) -> float:
    """The default value of a variable's ``n``-th write (1-based): ``n`` itself."""
    return float(n)


def serve(
    port: int,
    points: int,
    cert_dir: str | None,
    commands: Queue[Any],
    results: Queue[Any],
    value: Callable[[int, int], float] = count_up,
) -> None:
    """The server process's entry point (also used by ``bench.opcua_gateway``).

    Serves ``points`` Double variables ``nsu=NAMESPACE;s=P<i>`` on ``opc.tcp://127.0.0.1:<port>/bench``
    and puts ``("ready", port)`` on ``results``. Each ``("run", rate, seconds)`` on ``commands`` writes
    the variables round-robin at ``rate`` writes/s (0: as fast as it can) for ``seconds``, the
    ``n``-th write of variable ``i`` being ``value(i, n)`` stamped with the wall clock, then puts
    ``("done", written, elapsed)``; ``("stop",)`` ends it. ``value`` must be a module-level
    function (it is pickled into the spawned process).
    """
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve_async(port, points, cert_dir, commands, results, value))


async def _serve_async(
    port: int,
    points: int,
    cert_dir: str | None,
    commands: Queue[Any],
    results: Queue[Any],
    value: Callable[[int, int], float],
) -> None:
    from asyncua import ua
    from asyncua.server.server import Server

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
    if cert_dir is not None:
        await server.set_application_uri("urn:township-edge:bench:plc")
        await server.load_certificate(str(Path(cert_dir) / "cert.der"))
        await server.load_private_key(str(Path(cert_dir) / "key.pem"))
    ns = await server.register_namespace(NAMESPACE)
    folder = await server.nodes.objects.add_object(
        ua.NodeId.from_string(f"ns={ns};s=Bench"), ua.QualifiedName("Bench", ns)
    )
    nodes = []
    for i in range(points):
        var = await folder.add_variable(ua.NodeId.from_string(f"ns={ns};s=P{i}"), ua.QualifiedName(f"P{i}", ns), 0.0)
        nodes.append(var.nodeid)
    await server.start()
    results.put(("ready", port))
    counters = [0] * points
    try:
        while True:
            cmd = await asyncio.to_thread(commands.get)
            if cmd[0] == "stop":
                break
            _, rate, seconds = cmd
            written = 0
            start = time.perf_counter()
            end = start + seconds
            i = 0
            while (now := time.perf_counter()) < end:
                # Write what the pace asks for, at most one round of the points per step, then yield
                # so the server's own publishing keeps running (as a PLC's scan and its server do).
                target = int((now - start) * rate) if rate > 0 else written + points
                for _ in range(min(points, target - written)):
                    counters[i] += 1
                    dv = ua.DataValue(
                        ua.Variant(value(i, counters[i]), ua.VariantType.Double),
                        SourceTimestamp=ua.DateTime.now(dt.UTC),
                    )
                    await server.write_attribute_value(nodes[i], dv)
                    written += 1
                    i = (i + 1) % points
                behind = rate <= 0 or written < int((time.perf_counter() - start) * rate)
                await asyncio.sleep(0 if behind else TICK_S)
            results.put(("done", written, time.perf_counter() - start))
    finally:
        await server.stop()


# --- the gateway side -------------------------------------------------------------------------


@dataclass
class Sink:
    """Counts readings and records their latency while a phase is measured."""

    count: int = 0
    latencies: list[float] = field(default_factory=list)
    measuring: bool = False

    def __call__(self, r: Reading) -> None:
        if self.measuring:
            self.count += 1
            self.latencies.append(time.time() - r.time)

    def reset(self) -> None:
        self.count = 0
        self.latencies = []
        self.measuring = True


@dataclass(frozen=True)
class Row:
    label: str
    offered: float
    delivered: float
    lost: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_us: float


def _quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=1000, method="inclusive")[min(998, max(0, round(q * 1000) - 1))]


async def _phase(
    sink: Sink, commands: Queue[Any], results: Queue[Any], rate: float, seconds: float, settle_s: float
) -> Row:
    sink.reset()
    cpu0 = time.process_time()
    commands.put(("run", rate, seconds))
    msg = await asyncio.to_thread(results.get)
    _, written, elapsed = msg
    # Wait for the notifications still in flight: until all arrived, or none came for settle_s.
    seen, quiet_since = sink.count, time.perf_counter()
    while sink.count < written and time.perf_counter() - quiet_since < settle_s:
        await asyncio.sleep(0.05)
        if sink.count != seen:
            seen, quiet_since = sink.count, time.perf_counter()
    sink.measuring = False
    cpu = time.process_time() - cpu0
    lat_ms = [x * 1000 for x in sink.latencies]
    return Row(
        label=f"{rate:g}/s" if rate > 0 else "max",
        offered=written / elapsed,
        delivered=sink.count / elapsed,
        lost=max(0, written - sink.count),
        p50_ms=_quantile(lat_ms, 0.50),
        p99_ms=_quantile(lat_ms, 0.99),
        max_ms=max(lat_ms) if lat_ms else float("nan"),
        cpu_us=cpu / sink.count * 1e6 if sink.count else float("nan"),
    )


def _make_server_cert(directory: Path) -> None:
    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = cert_gen.generate_private_key()
    uri = "urn:township-edge:bench:plc"
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        uri,
        {},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("127.0.0.1")],
        [ExtendedKeyUsageOID.SERVER_AUTH],
    )
    (directory / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (directory / "key.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))


async def main_async(args: argparse.Namespace) -> list[Row]:
    ctx = mp.get_context("spawn")
    commands: Queue[Any] = ctx.Queue()
    results: Queue[Any] = ctx.Queue()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="opcua-bench-") as tmp:
        tmpdir = Path(tmp)
        cert_dir = None
        if args.security != "none":
            (tmpdir / "server").mkdir()
            _make_server_cert(tmpdir / "server")
            cert_dir = str(tmpdir / "server")
        proc = ctx.Process(target=serve, args=(port, args.points, cert_dir, commands, results), daemon=True)
        proc.start()
        try:
            ready = await asyncio.to_thread(results.get, True, 60)
            assert ready[0] == "ready", ready
            security: dict[str, Any] = {}
            if args.security != "none":
                security = {
                    "security_policy": "Basic256Sha256",
                    "security_mode": "Sign" if args.security == "sign" else "SignAndEncrypt",
                }
            device = OpcUaDevice.model_validate(
                {
                    "kind": "opcua",
                    "id": "bench-plc",
                    "endpoint": f"opc.tcp://127.0.0.1:{port}/bench",
                    "timeout_s": 10,
                    "watchdog_s": 5,
                    **security,
                    "points": [
                        {
                            "name": f"p{i}",
                            "node_id": f"nsu={NAMESPACE};s=P{i}",
                            "sampling_interval_ms": 0,
                            "publishing_interval_ms": args.publish_ms,
                            "queue_size": 64,
                        }
                        for i in range(args.points)
                    ],
                }
            )
            driver = OpcUaDriver(device, tmpdir / "state", tmpdir)
            sink = Sink()
            connected = asyncio.Event()
            task = asyncio.create_task(driver.run(sink, connected.set), name="gw[bench-plc].run")
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(connected.wait()), task], timeout=30, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()
            await asyncio.sleep(0.5)  # initial values
            rows: list[Row] = []
            for rate in [*args.rates, 0.0]:
                rows.append(await _phase(sink, commands, results, rate, args.seconds, args.settle))
                print(_format_row(rows[-1]), flush=True)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return rows
        finally:
            commands.put(("stop",))
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()


HEADER = (
    f"{'phase':>10} {'offered/s':>10} {'readings/s':>11} {'lost':>7} "
    f"{'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8} {'cpu_us/rd':>9}"
)


def _format_row(r: Row) -> str:
    return (
        f"{r.label:>10} {r.offered:10.0f} {r.delivered:11.0f} {r.lost:7d} "
        f"{r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.max_ms:8.1f} {r.cpu_us:9.1f}"
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def phase_arguments(prog: str, doc: str, seconds: float, rates: list[float]) -> argparse.ArgumentParser:
    """The options both OPC-UA benches share: points, phase length, paced rates, publishing, settling."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    p.add_argument("--points", type=int, default=100, help="variables on the server (default 100)")
    p.add_argument("--seconds", type=float, default=seconds, help=f"length of each phase (default {seconds:g})")
    default_rates = ",".join(f"{r:g}" for r in rates)
    p.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",") if x],
        default=rates,
        help=f"paced write rates, comma-separated (default {default_rates}); a 'max' phase follows",
    )
    p.add_argument("--publish-ms", type=float, default=50.0, help="publishing interval (default 50)")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="after a phase, stop waiting for in-flight readings after this long without one (default 1 s)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    p = phase_arguments("python -m bench.opcua_ingest", __doc__ or "", 5.0, [100.0, 1000.0, 2000.0, 5000.0])
    p.add_argument("--security", choices=["none", "sign", "encrypt"], default="none", help="Basic256Sha256 mode")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"machine: {os.cpu_count()} cpus, {_cpu_model()}; python {platform.python_version()}")
    print(
        f"points: {args.points}  phase: {args.seconds:g} s  publishing interval: {args.publish_ms:g} ms  "
        f"security: {args.security}"
    )
    print(HEADER, flush=True)
    rows = asyncio.run(main_async(args))
    clean = [r for r in rows if r.label != "max" and r.lost == 0]
    best = max(clean, key=lambda r: r.delivered) if clean else rows[0]
    print(f"readings/s: {best.delivered:.0f}  p50_ms: {best.p50_ms:.1f}  p99_ms: {best.p99_ms:.1f}")


if __name__ == "__main__":
    main()
