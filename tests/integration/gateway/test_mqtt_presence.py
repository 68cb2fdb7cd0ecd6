"""The MQTT uplink's presence: a box that dies without a word is reported offline by the broker
(its will), and one that comes back says online again (its birth), both retained."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import publisher, until, write_site
from tests.integration.gateway.test_process import start_gateway


async def test_will_says_offline_after_sigkill_and_birth_says_online(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, _port = write_site(tmp_path, mosquitto.port)
    site.write_text(site.read_text() + '\n[upstream.mqtt]\nbroker = "village"\ntopic_prefix = "county/incidents"\n')
    states: list[Any] = []
    async with publisher(mosquitto.port) as platform:
        platform.on_message = lambda _c, _t, payload, _q, _p: states.append(json.loads(payload)["state"])
        platform.subscribe("county/incidents/box-1/status", qos=1)
        proc = start_gateway(site)
        try:
            await until(lambda: states[-1:] == ["online"], 30, "the birth")
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            # mosquitto sends the will once the dead connection is noticed (the socket closes at once).
            await until(lambda: states[-1:] == ["offline"], 15, "the will")
            proc = start_gateway(site)
            await until(lambda: states[-1:] == ["online"], 30, "the birth after the restart")
        finally:
            proc.kill()
            proc.wait(5)
    # Retained: a platform that subscribes later still learns the last state at once.
    late: list[Any] = []
    async with publisher(mosquitto.port) as platform:
        platform.on_message = lambda _c, _t, payload, _q, _p: late.append(json.loads(payload)["state"])
        platform.subscribe("county/incidents/box-1/status", qos=1)
        await until(lambda: bool(late), 10, "the retained state")
    assert late == ["offline"]
