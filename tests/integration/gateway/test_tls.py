"""TLS on every link that can leave the box: a broker with mutual TLS, the MQTT uplink, an HTTPS
webhook signed by the county's own CA; and clear errors when trust or files are wrong."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv311

from gateway.app import Gateway
from gateway.doctor import run_doctor
from tests.conftest import Mosquitto, free_port
from tests.integration.gateway.conftest import (
    connected,
    feed,
    publisher,
    receiver,
    running,
    until,
    write_site,
)
from tests.pki import Pki, make_pki


def tls_table(ca: Path, pki: Pki | None) -> str:
    client = "" if pki is None else f', client_cert = "{pki.client_cert}", client_key = {{ file = "{pki.client_key}" }}'
    return f'tls = {{ ca_file = "{ca}"{client} }}'


def broker_over_tls(site: Path, plain_port: int, tls_port: int, table: str) -> None:
    text = site.read_text()
    old = f'host = "127.0.0.1"\nport = {plain_port}\n'
    assert old in text
    site.write_text(text.replace(old, f'host = "127.0.0.1"\nport = {tls_port}\n{table}\n'))


def link(gw: Gateway, name: str) -> str:
    h = next(s.health for s in gw.supervisors if s.name == name)
    return f"{h.state.value}: {h.last_error}"


@asynccontextmanager
async def tls_publisher(port: int, pki: Pki) -> AsyncIterator[gmqtt.Client]:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    client = gmqtt.Client(f"test-tls-pub-{free_port()}")
    await client.connect("127.0.0.1", port, ssl=ctx, version=MQTTv311)
    try:
        yield client
    finally:
        await client.disconnect()


async def test_broker_and_uplink_over_mutual_tls(tls_mosquitto: Mosquitto, pki: Pki, tmp_path: Path) -> None:
    assert tls_mosquitto.tls_port is not None
    site, port = write_site(tmp_path, tls_mosquitto.port)
    broker_over_tls(site, tls_mosquitto.port, tls_mosquitto.tls_port, tls_table(pki.ca_cert, pki))
    site.write_text(site.read_text() + '\n[upstream.mqtt]\nbroker = "village"\ntopic_prefix = "county/incidents"\n')
    got: list[dict[str, object]] = []
    # The platform listens on the plain listener: the broker shares topics between listeners.
    async with publisher(tls_mosquitto.port) as platform:
        platform.on_message = lambda _c, t, payload, _q, _p: (
            None if t.endswith("/status") else got.append(json.loads(payload))
        )
        platform.subscribe("county/incidents/#", qos=1)
        await asyncio.sleep(0.2)
        async with running(site) as gw, tls_publisher(tls_mosquitto.tls_port, pki) as terminal:
            await connected(gw)
            terminal.publish("t/river/000/level", json.dumps({"v": 4.4, "ts": time.time()}), qos=1)
            _, events = await feed(port, wait=5)
            await until(lambda: len(got) >= 1, 10, "the uplink publish over TLS")
    assert [e["data"]["detector"]["value"] for e in events] == [4.4]
    assert got[0]["id"] == events[0]["id"]


async def test_webhook_over_https_trusting_only_the_county_ca(mosquitto: Mosquitto, pki: Pki, tmp_path: Path) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    async with receiver(server) as rec:
        site, port = write_site(tmp_path, mosquitto.port, webhook_port=rec.port)
        text = site.read_text().replace(
            f'url = "http://127.0.0.1:{rec.port}/hook"', f'url = "https://127.0.0.1:{rec.port}/hook"'
        )
        site.write_text(text.replace("max_backoff_s = 1\n", f"max_backoff_s = 1\n{tls_table(pki.ca_cert, None)}\n"))
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            pub.publish("t/river/000/level", json.dumps({"v": 4.0, "ts": time.time()}), qos=1)
            await until(lambda: len(rec.events) >= 1, 10, "the HTTPS webhook delivery")
            _, events = await feed(port)
    assert [e["id"] for e in rec.events] == [e["id"] for e in events]
    assert rec.bad_signatures == 0


async def test_untrusted_or_missing_certificates_are_named(tls_mosquitto: Mosquitto, pki: Pki, tmp_path: Path) -> None:
    assert tls_mosquitto.tls_port is not None
    other = make_pki(tmp_path / "other", "other")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    async with receiver(server) as rec:
        site, _port = write_site(tmp_path, tls_mosquitto.port, webhook_port=rec.port)
        # The broker's certificate comes from a CA this box was not told to trust; the webhook
        # names a CA file that is not there.
        broker_over_tls(site, tls_mosquitto.port, tls_mosquitto.tls_port, tls_table(other.ca_cert, other))
        text = site.read_text().replace(
            f'url = "http://127.0.0.1:{rec.port}/hook"', f'url = "https://127.0.0.1:{rec.port}/hook"'
        )
        site.write_text(text.replace("max_backoff_s = 1\n", 'max_backoff_s = 1\ntls = { ca_file = "county-ca.pem" }\n'))
        async with running(site) as gw:
            await until(lambda: all(s.health.last_error for s in gw.supervisors), 10, "both links to fail")
            broker, hook = link(gw, "mqtt:village"), link(gw, "upstream:webhook")
            assert not rec.events
    assert "backoff" in broker and "TLS certificate is not trusted" in broker and "check tls.ca_file" in broker, broker
    assert f"TLS CA file {tmp_path / 'county-ca.pem'} not found" in hook, hook


async def test_a_broker_asking_for_a_client_certificate_refuses_a_box_without_one(
    tls_mosquitto: Mosquitto, pki: Pki, tmp_path: Path
) -> None:
    assert tls_mosquitto.tls_port is not None
    site, _port = write_site(tmp_path, tls_mosquitto.port)
    broker_over_tls(site, tls_mosquitto.port, tls_mosquitto.tls_port, tls_table(pki.ca_cert, None))
    async with running(site) as gw:
        # Within the first attempt, not after the 10 s connect timeout.
        await until(lambda: bool(gw.supervisors[0].health.last_error), 5, "the broker link to fail")
        state = link(gw, "mqtt:village")
    assert state.startswith("backoff: mqtt:village: broker 127.0.0.1:") and "closed the connection" in state, state
    assert "wants a client certificate (tls.client_cert)" in state, state


async def test_doctor_does_the_tls_handshake_and_names_what_is_wrong(
    tls_mosquitto: Mosquitto, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tls_mosquitto.tls_port is not None
    other = make_pki(tmp_path / "other", "other")
    site, _port = write_site(tmp_path, tls_mosquitto.port)
    broker_over_tls(site, tls_mosquitto.port, tls_mosquitto.tls_port, tls_table(pki.ca_cert, pki))
    where = f"127.0.0.1:{tls_mosquitto.tls_port} (TLS)"
    assert await run_doctor(site) == 0
    assert f"OK    MQTT broker village reachable at {where}" in capsys.readouterr().out
    site.write_text(site.read_text().replace(str(pki.ca_cert), str(other.ca_cert)))
    assert await run_doctor(site) == 1
    out = capsys.readouterr().out
    assert f"FAIL  MQTT broker village not reachable at {where}: the server's TLS certificate is not trusted" in out
    assert "-> the CA that signed the server's certificate belongs in tls.ca_file" in out
