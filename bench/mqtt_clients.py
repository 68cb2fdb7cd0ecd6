"""Which asyncio MQTT client drains a broker fastest: gmqtt against aiomqtt, same run, same broker.

    python -m bench.mqtt_clients [--messages 100000]

A publisher process fills a real mosquitto with JSON readings while one subscriber drains them
and parses each payload. Each client is measured at QoS 0 and QoS 1; the figure is messages/s
received and parsed, from the first to the last message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time

from bench._peers import mosquitto
from bench.ingest import _machine


def _publish(port: int, n: int, qos: int, topic: str) -> None:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    async def go() -> None:
        c = gmqtt.Client(f"bench-pub-{topic}")
        await c.connect("127.0.0.1", port, version=MQTTv311)
        payload = json.dumps({"v": 1.5, "ts": time.time()}).encode()
        for i in range(n):
            c.publish(topic, payload, qos=qos)
            if i % 500 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(1.0)
        await c.disconnect()

    asyncio.run(go())


async def _gmqtt(port: int, n: int, qos: int, topic: str) -> float:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    done = asyncio.Event()
    count = 0
    first = last = 0.0

    def on_message(_c: object, _t: str, payload: bytes, _q: int, _p: object) -> int:
        nonlocal count, first, last
        json.loads(payload)
        count += 1
        last = time.perf_counter()
        if count == 1:
            first = last
        if count >= n:
            done.set()
        return 0

    c = gmqtt.Client(f"bench-sub-g-{topic}")
    c.on_message = on_message
    await c.connect("127.0.0.1", port, version=MQTTv311)
    c.subscribe(topic, qos=qos)
    await asyncio.sleep(0.3)
    proc = mp.get_context("spawn").Process(target=_publish, args=(port, n, qos, topic))
    proc.start()
    with _bounded(60):
        await done.wait()
    proc.join()
    await c.disconnect()
    return (count - 1) / (last - first)


async def _aiomqtt(port: int, n: int, qos: int, topic: str) -> float:
    import aiomqtt

    count = 0
    first = 0.0
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"bench-sub-a-{topic}", max_queued_incoming_messages=0
    ) as c:
        await c.subscribe(topic, qos=qos)
        await asyncio.sleep(0.3)
        proc = mp.get_context("spawn").Process(target=_publish, args=(port, n, qos, topic))
        proc.start()
        with _bounded(120):
            async for msg in c.messages:
                json.loads(msg.payload)
                count += 1
                if count == 1:
                    first = time.perf_counter()
                if count >= n:
                    break
        last = time.perf_counter()
        proc.join()
    return (count - 1) / (last - first)


class _bounded:
    """A deadline that turns a hung measurement into an error instead of a hung benchmark."""

    def __init__(self, seconds: float) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._seconds = seconds

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handle = asyncio.get_running_loop().call_later(self._seconds, task.cancel)

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    args = ap.parse_args()
    print(f"machine: {_machine()}")
    results: dict[tuple[str, int], float] = {}
    with mosquitto() as port:
        for qos in (0, 1):
            for name, fn in (("gmqtt", _gmqtt), ("aiomqtt", _aiomqtt)):
                results[(name, qos)] = asyncio.run(fn(port, args.messages, qos, f"bench/{name}/{qos}"))
    print(f"{'client':<10}{'QoS 0 msg/s':>14}{'QoS 1 msg/s':>14}")
    for name in ("gmqtt", "aiomqtt"):
        print(f"{name:<10}{results[(name, 0)]:>14,.0f}{results[(name, 1)]:>14,.0f}")
    r0 = results[("gmqtt", 0)] / results[("aiomqtt", 0)]
    r1 = results[("gmqtt", 1)] / results[("aiomqtt", 1)]
    print(f"gmqtt/aiomqtt: QoS 0 {r0:.1f}x  QoS 1 {r1:.1f}x")


if __name__ == "__main__":
    main()
