"""A real mosquitto restart: the driver's abandoned client must never come back with the same id."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import aiomqtt
import pytest

from drivers.base import Reading
from drivers.mqtt import MqttDriver
from edge_config.mqtt import MqttBroker, MqttDevice, MqttPoint
from edge_core.backoff import Backoff
from gateway.metrics import Metrics
from gateway.supervisor import Supervisor
from tests.conftest import Mosquitto, _mosquitto_bin

_TAKEOVER = "already connected, closing old connection"


@pytest.fixture
def logged_mosquitto(tmp_path: Path) -> Mosquitto:
    binary = _mosquitto_bin()
    if binary is None:
        pytest.skip("mosquitto is not installed (scripts/test installs Debian's package)")
    broker = Mosquitto(binary, tmp_path)
    log = tmp_path / "mosquitto.log"
    broker.conf.write_text(
        broker.conf.read_text().replace("log_dest none", f"log_dest file {log}\nlog_type all\nconnection_messages true")
    )
    return broker


def _takeovers(broker: Mosquitto) -> int:
    log = broker.conf.parent / "mosquitto.log"
    return log.read_text(errors="replace").count(_TAKEOVER) if log.exists() else 0


async def _publish(port: int, topic: str, n: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-publisher") as pub:
        for i in range(n):
            await pub.publish(topic, str(i).encode(), qos=1)
            await asyncio.sleep(0.005)


async def test_broker_restart_leaves_one_client_and_loses_no_reading(logged_mosquitto: Mosquitto) -> None:
    broker = logged_mosquitto
    broker.start()
    try:
        cfg = MqttBroker(id="b", host="127.0.0.1", port=broker.port, keepalive_s=5)
        dev = MqttDevice(kind="mqtt", id="pump-1", broker="b", points=[MqttPoint(name="level", topic="v/pump-1/level")])
        drv = MqttDriver(cfg, [dev], client_id="edge-test-b", password=None, on_malformed=lambda _r: None)
        got: list[Reading] = []
        connects = 0

        sup = Supervisor(drv.name, functools.partial(drv.run, got.append), Metrics(), backoff=Backoff(0.2, 1.0))
        real_connected = sup._connected

        def counted() -> None:
            nonlocal connects
            connects += 1
            real_connected()

        sup._connected = counted  # type: ignore[method-assign]
        task = asyncio.create_task(sup.run())
        for _ in range(100):
            if connects:
                break
            await asyncio.sleep(0.05)
        assert connects == 1

        # A short restart, as in the field: 1.5 s down, back on the same port.
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(broker.start)
        # gmqtt's own reconnect would fire 6 s after the loss; wait past two of those.
        await asyncio.sleep(14.0)
        assert _takeovers(broker) == 0, "an abandoned client reconnected with the driver's client id"
        assert connects == 2

        got.clear()
        await _publish(broker.port, "v/pump-1/level", 300)
        for _ in range(100):
            if len(got) >= 300:
                break
            await asyncio.sleep(0.05)
        assert [r.value for r in got] == [float(i) for i in range(300)]
        assert _takeovers(broker) == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        broker.stop()
