"""Ack and close answer 200 only once durable: a SIGKILL right after the answer loses nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import api, feed, publisher, write_site
from tests.integration.gateway.test_process import start_gateway, wait_ready


async def test_ack_and_close_survive_a_sigkill_right_after_the_answer(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    # A slow group commit (the most a site may set) makes the window between answer and commit wide.
    site.write_text(site.read_text().replace("commit_interval_ms = 2", "commit_interval_ms = 1000"))
    proc = start_gateway(site)
    try:
        await wait_ready(port, proc)
        async with publisher(mosquitto.port) as pub:
            pub.publish("t/river/000/level", json.dumps({"v": 4.0, "ts": time.time()}), qos=1)
            _after, events = await feed(port, wait=5)
        incident = events[0]["data"]["incident_id"]

        status, body = await api(port, "POST", f"/api/v1/incidents/{incident}/ack", {"by": "operator-3"})
        assert status == 200, body
        proc.kill()
        proc.wait(10)
        proc = start_gateway(site)
        await wait_ready(port, proc)
        status, body = await api(port, "GET", f"/api/v1/incidents/{incident}")
        assert status == 200 and body["status"] == "acknowledged", body

        status, body = await api(port, "POST", f"/api/v1/incidents/{incident}/close", {"by": "chief"})
        assert status == 200 and body["status"] == "closed", body
        proc.kill()
        proc.wait(10)
        proc = start_gateway(site)
        await wait_ready(port, proc)
        status, body = await api(port, "GET", f"/api/v1/incidents/{incident}")
        assert status == 200 and body["status"] == "closed", body
        # The platform's retry of the close gets the same answer.
        status, again = await api(port, "POST", f"/api/v1/incidents/{incident}/close", {"by": "chief"})
        assert status == 200 and again["status"] == "closed" and again["feedback"] == body["feedback"], again
    finally:
        proc.kill()
        proc.wait(10)
