"""`edge-gateway demo`: a whole village on one machine, on 127.0.0.1 only.

An in-process MQTT broker (amqtt), terminals that publish a river level and a kitchen gas reading
on a script (the river rises past its limit about 20 s in, the gas detector spikes about 40 s in,
both come back later, and it repeats), a pump house PLC (a real OPC-UA server) whose outlet
pressure jumps away from normal 90 s in, which no fixed threshold is set for but the anomaly
detector catches, a camera (the ONVIF simulator, streaming a generated scene in which someone walks
through the gate's restricted zone and then the lights come on) whose walker raises an intrusion
with a JPEG of the box, and the gateway itself with its feed, API and status page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from edge_config import load
from edge_core.errors import ConfigError
from simulators.demo_camera import demo_camera
from simulators.pumphouse import pumphouse

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["DEMO_SITE", "run_demo"]

log = logging.getLogger(__name__)

DEMO_SITE = """\
state_dir = "{state_dir}"

[site]
box_id = "demo-panlian-xinhe"
township = "Panlian (demo)"
village = "Xinhe (demo)"
civil_code = "510421103"
latitude = 26.89
longitude = 102.12

[api]
listen = "127.0.0.1"
port = {api_port}
token = {{ file = "api_token" }}
technician_token = {{ file = "technician_token" }}

[outbox]
budget_mb = 64

[[brokers]]
id = "village"
host = "127.0.0.1"
port = {mqtt_port}

[[devices]]
kind = "mqtt"
id = "river-level-01"
name = "Xinhe bridge river gauge"
broker = "village"
department = "water-affairs"
location = {{ zone = "Xinhe bridge", latitude = 26.891, longitude = 102.118 }}

  [[devices.points]]
  name = "level"
  topic = "xinhe/river/01"
  value_path = "level_m"
  time_path = "ts"
  unit = "m"

[[devices]]
kind = "mqtt"
id = "gas-school-01"
name = "School kitchen gas detector"
broker = "village"
department = "emergency-management"

  [[devices.points]]
  name = "ch4"
  topic = "xinhe/gas/school/ch4"
  unit = "%LEL"

[[devices]]
kind = "opcua"
id = "pump-plc-01"
name = "Tianba pump house PLC"
department = "water-affairs"
location = {{ zone = "Tianba pump house" }}
endpoint = "{opcua_url}"

  [[devices.points]]
  name = "outlet_pressure"
  browse_path = "/2:PumpHouse/2:OutletPressure"
  unit = "bar"
  sampling_interval_ms = 250
  publishing_interval_ms = 250

[[rules]]
kind = "anomaly"
id = "pressure-anomaly"
devices = ["pump-*"]
point = "outlet_pressure"
severity = "major"
resolve_after_s = 30

[[rules]]
kind = "threshold"
id = "river-high"
devices = ["river-level-*"]
point = "level"
above = 3.5
hysteresis = 0.2
for_s = 5
severity = "major"
department = "flood-control"
update_interval_s = 15

[[rules]]
kind = "threshold"
id = "gas-alarm"
devices = ["gas-*"]
point = "ch4"
above = 20
hysteresis = 5
severity = "critical"

[[rules]]
kind = "silence"
id = "offline"
devices = ["*"]
for_s = 30
severity = "minor"
"""

_CYCLE_S = 120.0


def toml_value(v: Any) -> str:
    """A value as TOML (inline tables and arrays): enough for the stanzas the demo writes."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def device_stanza(device: dict[str, Any]) -> str:
    return "\n[[devices]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in device.items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_free(port: int) -> None:
    """Say at once that the API port is taken, before the simulators start and the scene encodes."""
    with socket.socket() as s:
        # As the API will bind: a port left in TIME_WAIT by a demo just stopped is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"demo: cannot listen on 127.0.0.1:{port}: {exc.strerror}: "
                "is a demo or a gateway already running? Stop it, or pass --port N (0 picks a free port)"
            ) from None


def river_level(t: float) -> float:
    """Metres at the gauge, t seconds into the cycle: a flood wave in the first minute, then calm."""
    phase = t % _CYCLE_S
    wave = 2.0 * math.sin(math.pi * phase / 60) if phase <= 60 else 0.0
    return round(2.1 + wave + 0.02 * math.sin(phase), 3)


def gas_lel(t: float) -> float:
    """Percent of the lower explosive limit: a leak from 40 s to 55 s of the cycle."""
    phase = t % _CYCLE_S
    return 35.0 if 40 <= phase <= 55 else round(1.5 + 0.5 * math.sin(phase / 3), 2)


async def _publish_terminals(port: int, stop: asyncio.Event) -> None:
    client = gmqtt.Client("demo-terminals")
    await client.connect("127.0.0.1", port, version=MQTTv311)
    start = time.time()
    try:
        while not stop.is_set():
            t = time.time() - start
            client.publish("xinhe/river/01", json.dumps({"level_m": river_level(t), "ts": time.time()}), qos=1)
            client.publish("xinhe/gas/school/ch4", str(gas_lel(t)), qos=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await client.disconnect()


async def _start_broker(port: int) -> object:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    return broker


async def _streaming(gw: Gateway, timeout_s: float = 60.0) -> None:
    """Until the gateway is ready and its camera has sent video (so that the page printed next
    opens on live video, not on a camera still connecting), or ``timeout_s`` has passed."""
    await gw.ready.wait()
    for _ in range(int(timeout_s / 0.2)):  # the camera's frames are counted, not signalled
        if all(c.get("frames", 0) > 0 for c in gw.camera_set.status()):
            return
        await asyncio.sleep(0.2)


async def run_demo(*, port: int = 8780, state_dir: Path | None = None, stop: asyncio.Event | None = None) -> int:
    from gateway.app import Gateway

    if port:
        _check_free(port)
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edge-gateway-demo-")
        state_dir = Path(tmp.name)
    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = state_dir / "api_token"
    for name in ("api_token", "technician_token"):  # the platform's, and the technician's login
        secret = state_dir / name
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(24) + "\n")
            secret.chmod(0o600)
    mqtt_port = _free_port()
    api_port = port or _free_port()
    site = state_dir / "site.toml"
    opcua_port = _free_port()
    broker = await _start_broker(mqtt_port)
    plc_cm = pumphouse(opcua_port)
    plc = await plc_cm.__aenter__()
    cam_cm = demo_camera(state_dir / "demo-camera")
    print("Preparing the demo camera (encoding its scene takes a few seconds)...", flush=True)
    cam = await cam_cm.__aenter__()
    text = DEMO_SITE.format(state_dir=state_dir, api_port=api_port, mqtt_port=mqtt_port, opcua_url=plc.url)
    site.write_text(text + device_stanza(cam.device))
    stop = stop or asyncio.Event()
    gw = Gateway(load(site))
    token = token_file.read_text().strip()
    technician = (state_dir / "technician_token").read_text().strip()
    try:
        async with asyncio.TaskGroup() as tg:
            gw_task = tg.create_task(gw.run(stop), name="gw[demo].gateway")
            ready = asyncio.create_task(_streaming(gw))
            await asyncio.wait([ready, gw_task], return_when=asyncio.FIRST_COMPLETED)
            tg.create_task(_publish_terminals(mqtt_port, stop), name="gw[demo].terminals")
            base = f"http://127.0.0.1:{api_port}"
            print(
                f"\nDemo site running (config {site}).\n"
                f"  page:   {base}/#token={technician}  (the technician's login: live view, zone editor)\n"
                f"  feed:   {base}/api/v1/events?after=0&wait=30\n"
                f"  token:  {token}\n"
                f"  try:    curl -H 'Authorization: Bearer {token}' '{base}/api/v1/events?after=0&wait=30'\n"
                "The river crosses its limit about 20 s in, the gas detector about 40 s in, the pump house\n"
                "pressure jumps into an anomaly about 90 s in. Ctrl-C stops.\n",
                flush=True,
            )
    finally:
        await cam_cm.__aexit__(None, None, None)
        await plc_cm.__aexit__(None, None, None)
        await broker.shutdown()  # type: ignore[attr-defined]
        if tmp is not None:
            tmp.cleanup()
    return 0
