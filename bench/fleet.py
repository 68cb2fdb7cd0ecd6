"""A county of boxes: N real gateway daemons into a three-node JetStream cluster, through failures.

    python -m bench.fleet [--boxes 20] [--rate 1.0] [--seconds 240]

Everything is a real process on 127.0.0.1: Debian's nats-server three times (one cluster, the
stream replicated R3), one mosquitto carrying every box's sensor feed, N ``edge-gateway run``
daemons (each its own site file, state directory and sensor topic, a threshold rule turning every
toggle of the level into an incident event) and, in this process, the county consumer
(``examples/county_consumer.py``) plus an MQTT subscriber on NATS's MQTT listener.

During the run it kills the stream leader's node and starts it again; cuts box 0's uplink for 60 s
(its servers are TCP proxies in this process); SIGKILLs three gateways at random moments and
restarts them; and restarts the whole cluster once. Then it stops the feed, lets every box drain,
stops the daemons and checks the consumer's records against each box's outbox: every committed
event arrived, none twice, per-box order held. The boxes with an MQTT uplink as well (persistent
session, QoS 1, to the leader's MQTT listener) go through the same leader kill; what their
subscriber lost or saw twice is counted and printed, not hidden.

The last line reads
``boxes: N events: E lost: 0 duplicated: 0 out_of_order: 0 p99_ms: X reconnect_spread_s: S``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gmqtt
import nats
import nats.errors
from gmqtt.mqtt.constants import MQTTv311
from nats.aio.msg import Msg

from bench._fleet_parts import (
    MQTT_PREFIX,
    PREFIX,
    STREAM,
    Box,
    Proxy,
    check,
    committed,
    leader_of,
    quiet,
    ready,
    site_toml,
    start,
    usage,
)
from bench._nats import NatsCluster
from bench._peers import free_port, mosquitto
from examples.county_consumer import BoxState, CountyConsumer, ensure_stream

__all__ = ["FleetResult", "main", "run"]


@dataclass
class FleetResult:
    boxes: int
    events: int
    lost: int
    duplicated: int
    out_of_order: int
    p50_ms: float
    p99_ms: float
    reconnect_spread_s: float
    events_per_s: float
    mqtt_boxes: int
    mqtt_events: int
    mqtt_lost: int
    mqtt_duplicated: int
    mqtt_out_of_order: int
    rss_mib: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    per_box: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def last_line(self) -> str:
        return (
            f"boxes: {self.boxes} events: {self.events} lost: {self.lost} duplicated: {self.duplicated} "
            f"out_of_order: {self.out_of_order} p99_ms: {self.p99_ms:.0f} "
            f"reconnect_spread_s: {self.reconnect_spread_s:.1f}"
        )


async def run(workdir: Path, **kw: object) -> FleetResult:
    """Run the fleet (see :func:`_run` for the knobs); every daemon is gone when it returns or raises."""
    fleet: list[Box] = []
    try:
        return await _run(workdir, fleet, **kw)  # type: ignore[arg-type]
    finally:
        for b in fleet:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait(10)


async def _run(
    workdir: Path,
    fleet: list[Box],
    *,
    boxes: int = 20,
    rate_hz: float = 1.0,
    seconds: float = 240.0,
    cut_s: float = 60.0,
    sigkills: int = 3,
    cluster_restart: bool = True,
    mqtt_boxes: int = 2,
    say: object = print,
) -> FleetResult:
    """Run the fleet; ``seconds`` is the span of the failure schedule (the drain comes after)."""
    assert callable(say)
    log: list[str] = []
    t_start = time.monotonic()

    def note(text: str) -> None:
        line = f"[{time.monotonic() - t_start:6.1f} s] {text}"
        log.append(line)
        say(line)

    cluster = NatsCluster(workdir / "nats", no_advertise=True)
    with mosquitto() as mqtt_port, cluster:
        nc = await nats.connect(
            servers=cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=quiet
        )
        js = nc.jetstream(timeout=5)
        await ensure_stream(js, stream=STREAM, subjects=[f"{PREFIX}.>"], replicas=3)
        leader = cluster.node(await leader_of(cluster.urls))
        note(f"cluster up, stream {STREAM} R3, leader {leader.name}")

        # Box 0 reaches the cluster through proxies this process can cut.
        proxies = [Proxy(n.port) for n in cluster.nodes]
        for p in proxies:
            await p.open()
        for i in range(boxes):
            d = workdir / f"box-{i:03d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "token").write_text("fleet-token\n")
            box = Box(i, d, free_port(), mqtt_uplink=1 <= i <= mqtt_boxes)
            servers = [f"nats://127.0.0.1:{p.port}" for p in proxies] if i == 0 else cluster.urls
            # The MQTT uplinks talk to the leader's own MQTT listener, so the leader kill is theirs too.
            (d / "site.toml").write_text(
                site_toml(box, servers, mqtt_port, leader.mqtt_port if box.mqtt_uplink else None)
            )
            fleet.append(box)
            start(box)
        await ready(fleet, 60 + 3 * boxes)
        note(f"{boxes} gateways ready ({mqtt_boxes} with an MQTT uplink to {leader.name}'s MQTT listener)")

        # What the platform sees.
        records: dict[str, list[tuple[int, str, float, float]]] = {}

        async def handle(msg: Msg, box: BoxState) -> None:
            h = msg.headers or {}
            stored = msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else time.time()
            now = time.time()
            records.setdefault(box.box, []).append((int(h.get("Edge-Seq", "0")), h.get("Nats-Msg-Id", ""), stored, now))

        consumer = CountyConsumer(js, stream=STREAM, subjects=f"{PREFIX}.>", durable="fleet", handle=handle)
        stop_consumer = asyncio.Event()
        consumer_task = asyncio.create_task(consumer.run(stop_consumer), name="fleet.consumer")

        mqtt_got: dict[str, list[tuple[int, str]]] = {}
        sub = gmqtt.Client("fleet-county-sub", clean_session=False)

        def on_message(_c: object, topic: str, payload: bytes, _q: int, _p: object) -> int:
            if topic.endswith("/status"):
                return 0  # the boxes' presence, not an event
            ev = json.loads(payload)
            mqtt_got.setdefault(topic.split("/")[1], []).append((int(ev["sequence"]), ev["id"]))
            return 0

        sub.on_message = on_message
        other = next(n for n in cluster.nodes if n is not leader)
        sub.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        await sub.connect("127.0.0.1", other.mqtt_port, version=MQTTv311)
        sub.subscribe(f"{MQTT_PREFIX}/#", qos=1)

        # The sensor feed: every box's level toggles across the threshold at rate_hz.
        stop_feed = asyncio.Event()

        async def feed() -> None:
            pub = gmqtt.Client("fleet-feed")
            await pub.connect("127.0.0.1", mqtt_port, version=MQTTv311)
            n = 0
            while not stop_feed.is_set():
                v = 4.0 if n % 2 == 0 else 2.0
                for b in fleet:
                    pub.publish(f"fleet/{b.name}/level", json.dumps({"v": v}), qos=1)
                n += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0 / rate_hz):
                        await stop_feed.wait()
            await pub.disconnect()

        feed_task = asyncio.create_task(feed(), name="fleet.feed")
        t0 = time.monotonic()

        async def at(t: float) -> None:
            await asyncio.sleep(max(0.0, t0 + t - time.monotonic()))

        async def sigkills_at(times: list[float]) -> None:
            victims = random.sample(fleet[1:] if len(fleet) > 1 else fleet, min(sigkills, max(1, len(fleet) - 1)))
            for t, box in zip(sorted(times), victims, strict=False):
                await at(t)
                assert box.proc is not None
                box.proc.send_signal(signal.SIGKILL)
                box.proc.wait(10)
                box.kills += 1
                note(f"SIGKILL {box.name}")
                await asyncio.sleep(random.uniform(1.0, 4.0))
                start(box)
                note(f"restarted {box.name}")

        s = seconds
        kill_times = [random.uniform(0.3 * s, 0.55 * s) for _ in range(sigkills)]
        killer = asyncio.create_task(sigkills_at(kill_times)) if sigkills else None

        await at(0.08 * s)
        leader = cluster.node(await leader_of(cluster.urls))
        cluster.kill(leader)
        note(f"SIGKILL stream leader {leader.name}")
        await at(0.15 * s)
        cluster.start(leader)
        note(f"restarted {leader.name}")

        if cut_s > 0:
            await at(0.2 * s)
            for p in proxies:
                await p.cut()
            note(f"box-000 uplink cut for {cut_s:.0f} s")
            await asyncio.sleep(cut_s)
            for p in proxies:
                await p.open()
            note("box-000 uplink back")

        if killer is not None:
            await killer

        reconnect_spread = 0.0
        if cluster_restart:
            await at(0.7 * s)
            cluster.stop()
            note("whole cluster stopped")
            await asyncio.sleep(3.0)
            cluster.start()
            up = time.time()
            note("whole cluster started")
        await at(s)
        stop_feed.set()
        await feed_task
        note("feed stopped; draining")

        # Drain: every box's outbox fully in the consumer's hands, or a deadline.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            behind = 0
            for b in fleet:
                want = committed(b)
                have = {i for _, i, _, _ in records.get(b.key, [])}
                behind += len({i for _, i in want} - have)
                if b.mqtt_uplink:
                    behind += len({i for _, i in want} - {i for _, i in mqtt_got.get(b.name, [])})
            if behind == 0:
                break
            await asyncio.sleep(1.0)
        note("drained" if behind == 0 else f"drain deadline passed with {behind} events missing")
        await asyncio.sleep(2.0)  # any late duplicate has its chance to show

        alive = [b for b in fleet if b.proc is not None and b.proc.poll() is None]
        used = [usage(b.proc.pid) for b in alive if b.proc is not None]
        per_box = [
            f"{b.name}: RSS {rss:.0f} MiB, CPU {cpu:.1f} s" + (" (since its restart)" if b.kills else "")
            for b, (rss, cpu) in zip(alive, used, strict=True)
        ]
        for b in fleet:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.terminate()
        for b in fleet:
            if b.proc is not None:
                try:
                    b.proc.wait(15)
                except subprocess.TimeoutExpired:
                    b.proc.kill()
        await asyncio.sleep(1.0)  # the MQTT subscriber's last messages
        stop_consumer.set()
        await consumer_task
        await sub.disconnect()
        await nc.close()
        for p in proxies:
            await p.cut()

    lost = dup = ooo = total = 0
    mlost = mdup = mooo = mtotal = 0
    latencies: list[float] = []
    firsts: list[float] = []
    for b in fleet:
        want = committed(b)
        total += len(want)
        got = records.get(b.key, [])
        latencies += [(now - stored) * 1000 for _, _, stored, now in got]
        lo, du, oo = check(want, [(seq, i) for seq, i, _, _ in got])
        lost, dup, ooo = lost + lo, dup + du, ooo + oo
        if cluster_restart:
            after = [stored for _, _, stored, _ in got if stored >= up]
            if after:
                firsts.append(min(after))
        if b.mqtt_uplink:
            mtotal += len(want)
            lo, du, oo = check(want, mqtt_got.get(b.name, []))
            mlost, mdup, mooo = mlost + lo, mdup + du, mooo + oo
    if firsts:
        reconnect_spread = max(firsts) - min(firsts)
    latencies.sort()
    span = max(1e-9, time.monotonic() - t0)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return FleetResult(
        boxes=boxes,
        events=total,
        lost=lost,
        duplicated=dup,
        out_of_order=ooo,
        p50_ms=q[49],
        p99_ms=q[98],
        reconnect_spread_s=reconnect_spread,
        events_per_s=total / span,
        mqtt_boxes=mqtt_boxes,
        mqtt_events=mtotal,
        mqtt_lost=mlost,
        mqtt_duplicated=mdup,
        mqtt_out_of_order=mooo,
        rss_mib=[r for r, _ in used],
        cpu_s=[c for _, c in used],
        per_box=per_box,
        log=log,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--boxes", type=int, default=20)
    p.add_argument("--rate", type=float, default=1.0, help="level toggles per second per box (one event each)")
    p.add_argument("--seconds", type=float, default=240.0, help="span of the failure schedule")
    p.add_argument("--cut", type=float, default=60.0, help="seconds box 0's uplink stays cut")
    p.add_argument("--mqtt-boxes", type=int, default=2, help="boxes that also push over MQTT to NATS's listener")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if args.seed is not None:
        random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        r = asyncio.run(
            run(
                Path(tmp),
                boxes=args.boxes,
                rate_hz=args.rate,
                seconds=args.seconds,
                cut_s=args.cut,
                mqtt_boxes=args.mqtt_boxes,
            )
        )
    print(f"end to end: {r.events_per_s:.1f} events/s committed over the run; publish->consumer p50 {r.p50_ms:.0f} ms")
    for line in r.per_box:
        print(line)
    if r.rss_mib:
        print(
            f"per box: RSS {min(r.rss_mib):.0f}/{statistics.median(r.rss_mib):.0f}/{max(r.rss_mib):.0f} MiB "
            f"(min/median/max), CPU {min(r.cpu_s):.1f}/{statistics.median(r.cpu_s):.1f}/{max(r.cpu_s):.1f} s"
        )
    print(
        f"mqtt uplink via NATS's MQTT listener: boxes: {r.mqtt_boxes} events: {r.mqtt_events} lost: {r.mqtt_lost} "
        f"duplicated: {r.mqtt_duplicated} out_of_order: {r.mqtt_out_of_order}"
    )
    print(r.last_line())
    return 0 if r.lost == r.duplicated == r.out_of_order == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
