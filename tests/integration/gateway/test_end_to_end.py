"""Readings through a real mosquitto into incidents, seen in the feed and by the webhook."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.conftest import Mosquitto, free_port
from tests.integration.gateway.conftest import api, connected, feed, publisher, receiver, running, until, write_site


def reading(v: float) -> str:
    return json.dumps({"v": v, "ts": time.time()})


async def test_breach_reaches_feed_and_webhook_as_cloudevents(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with receiver() as rec:
        site, port = write_site(tmp_path, mosquitto.port, webhook_port=rec.port)
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            for v in (2.0, 3.9, 4.1, 3.4, 3.2):
                pub.publish("t/river/000/level", reading(v), qos=1)
                await asyncio.sleep(0.05)
            await until(lambda: len(rec.events) >= 2, 10, "two webhook deliveries")
            _, events = await feed(port)

    assert [e["type"] for e in events] == ["township.edge.incident.opened", "township.edge.incident.resolved"]
    opened, resolved = events
    for e in events:
        assert e["specversion"] == "1.0"
        assert e["source"] == "urn:township-edge:box-1/river-000"
        assert e["subject"] == opened["data"]["incident_id"]
        assert e["datacontenttype"] == "application/json"
    assert opened["id"] != resolved["id"]
    assert [int(e["sequence"]) for e in events] == [1, 2]
    data = opened["data"]
    assert data["category"] == "threshold-breach"
    assert data["severity"] == "major"
    assert data["department"] == "water-affairs"
    assert data["place"]["device"] == "river-000" and data["place"]["zone_name"] == "bridge 0"
    assert data["detector"]["value"] == 3.9 and data["detector"]["threshold"] == 3.5
    # 3.4 is inside the hysteresis band (3.5 - 0.2): the incident resolves only at 3.2.
    assert resolved["data"]["detector"]["value"] == 3.2
    assert resolved["data"]["status"] == "resolved"
    # The webhook got the same events, in order, signed, in structured mode.
    assert [e["id"] for e in rec.events] == [e["id"] for e in events]
    assert rec.bad_signatures == 0
    assert rec.content_types == {"application/cloudevents+json; charset=utf-8"}


async def test_platform_ack_and_close_and_no_reopen_while_condition_lasts(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        await connected(gw)
        pub.publish("t/river/000/level", reading(4.0), qos=1)
        after, events = await feed(port, wait=5)
        incident_id = events[0]["data"]["incident_id"]

        status, body = await api(
            port, "POST", f"/api/v1/incidents/{incident_id}/ack", {"by": "flood-office", "note": "team sent"}
        )
        assert status == 200 and body["status"] == "acknowledged"
        assert body["feedback"]["acknowledged"]["by"] == "flood-office"
        status, body = await api(port, "POST", f"/api/v1/incidents/{incident_id}/close", {"by": "flood-office"})
        assert status == 200 and body["status"] == "closed"

        # The river is still high: the closed incident must not come back.
        for v in (4.2, 4.3):
            pub.publish("t/river/000/level", reading(v), qos=1)
        await asyncio.sleep(0.5)
        after2, more = await feed(port, after=after)
        assert [e["type"].rsplit(".", 1)[1] for e in more] == ["acknowledged", "closed"]
        assert more[1]["data"]["feedback"]["closed"]["by"] == "flood-office"

        # Once the water went down and rises again, that is a new incident.
        pub.publish("t/river/000/level", reading(2.0), qos=1)
        await asyncio.sleep(0.2)
        pub.publish("t/river/000/level", reading(4.5), qos=1)
        _, newer = await feed(port, after=after2, wait=5)
        assert [e["type"].rsplit(".", 1)[1] for e in newer] == ["opened"]
        assert newer[0]["data"]["incident_id"] != incident_id

        status, body = await api(port, "POST", "/api/v1/incidents/nope/ack", {"by": "x"})
        assert status == 404
        status, body = await api(port, "POST", f"/api/v1/incidents/{incident_id}/ack", {"note": "who?"})
        assert status == 400 and "by" in body["detail"]


async def test_broker_restart_keeps_subscriptions(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw:
        await connected(gw)
        mosquitto.stop()
        await until(lambda: gw.supervisors[0].health.state.value in ("backoff", "failed"), 10, "driver to notice")
        mosquitto.start()
        await connected(gw, timeout=20)
        async with publisher(mosquitto.port) as pub:
            pub.publish("t/river/000/level", reading(5.0), qos=1)
            _, events = await feed(port, wait=5)
    assert [e["type"] for e in events] == ["township.edge.incident.opened"]
    assert gw.supervisors[0].health.restarts >= 1


async def test_bad_payloads_are_counted_and_do_not_stop_the_driver(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        await connected(gw)
        pub.publish("t/river/000/level", b"not json", qos=1)
        pub.publish("t/river/000/level", json.dumps({"w": 1, "ts": 1.7e9}), qos=1)
        pub.publish("t/river/000/level", json.dumps({"v": "high", "ts": 1.7e9}), qos=1)
        pub.publish("t/river/000/level", b"{" + b" " * 70000 + b"}", qos=1)
        pub.publish("t/river/000/level", reading(4.0), qos=1)
        _, events = await feed(port, wait=5)
        status, text = await api(port, "GET", "/metrics")
    assert [e["type"] for e in events] == ["township.edge.incident.opened"]
    assert status == 200
    for reason in ("bad-json", "missing-field", "not-a-number", "oversized"):
        assert f'gateway_malformed_payloads_total{{driver="mqtt:village",reason="{reason}"}} 1.0' in text, reason
    assert 'gateway_readings_total{device="river-000"} 1.0' in text
    assert gw.supervisors[0].health.restarts == 0


async def test_long_poll_returns_when_an_event_is_committed(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        await connected(gw)
        poll = asyncio.create_task(feed(port, after=0, wait=20))
        await asyncio.sleep(0.3)
        assert not poll.done()
        t0 = time.monotonic()
        pub.publish("t/river/000/level", reading(4.0), qos=1)
        _, events = await asyncio.wait_for(poll, 10)
        assert len(events) == 1
        assert time.monotonic() - t0 < 5  # answered on commit, not at the end of the wait
        # An empty poll with wait=0 answers at once with an empty batch.
        nxt, none = await feed(port, after=1)
        assert none == [] and nxt == 1


async def test_mqtt_uplink_publishes_each_event_after_puback(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    site.write_text(site.read_text() + '\n[upstream.mqtt]\nbroker = "village"\ntopic_prefix = "county/incidents"\n')
    got: list[tuple[str, dict[str, object]]] = []
    async with publisher(mosquitto.port) as platform:
        platform.on_message = lambda _c, topic, payload, _q, _p: got.append((topic, json.loads(payload)))
        platform.subscribe("county/incidents/#", qos=1)
        await asyncio.sleep(0.2)
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            pub.publish("t/river/000/level", reading(4.0), qos=1)
            _, events = await feed(port, wait=5)
            await until(lambda: len(got) >= 2, 10, "the uplink publish")
            await until(lambda: gw.outbox.cursor("mqtt") == 1, 5, "the uplink cursor to advance")
    # The event between the box's birth and its clean goodbye, both retained on its status topic.
    assert [t for t, _ in got] == [
        "county/incidents/box-1/status",
        "county/incidents/box-1/threshold-breach",
        "county/incidents/box-1/status",
    ]
    assert [p["state"] for t, p in got if t.endswith("/status")] == ["online", "offline"]
    assert got[1][1]["id"] == events[0]["id"]


async def test_restart_resumes_open_incidents_instead_of_reraising(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        await connected(gw)
        pub.publish("t/river/000/level", reading(4.0), qos=1)
        after, events = await feed(port, wait=5)
    incident_id = events[0]["data"]["incident_id"]
    # Same state directory, new process life: the high river is the same incident, and when the
    # water goes down it resolves (rather than staying open forever or opening a second one).
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        await connected(gw)
        assert [i.id for i in gw.incidents.incidents] == [incident_id]
        pub.publish("t/river/000/level", reading(4.4), qos=1)
        await asyncio.sleep(0.3)
        pub.publish("t/river/000/level", reading(2.0), qos=1)
        _, later = await feed(port, after=after, wait=5)
    assert [(e["type"].rsplit(".", 1)[1], e["subject"]) for e in later] == [("resolved", incident_id)]
    assert int(later[0]["sequence"]) == after + 1


async def test_a_link_down_past_its_limit_makes_its_devices_offline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, port = write_site(tmp_path, mosquitto.port, devices=2)
    site.write_text(site.read_text().replace('village = "Xinhe"', 'village = "Xinhe"\nlink_offline_s = 1'))
    async with running(site) as gw:
        await connected(gw)
        mosquitto.stop()
        after, events = await feed(port, wait=10)
        mosquitto.start()
        await connected(gw, timeout=20)
        _, later = await feed(port, after=after, wait=10)
    assert sorted((e["type"].rsplit(".", 1)[1], e["data"]["place"]["device"]) for e in events) == [
        ("opened", "river-000"),
        ("opened", "river-001"),
    ]
    assert {e["data"]["category"] for e in events} == {"device-offline"}
    assert "mqtt:village down" in events[0]["data"]["summary"]
    assert sorted((e["type"].rsplit(".", 1)[1], e["data"]["place"]["device"]) for e in later) == [
        ("resolved", "river-000"),
        ("resolved", "river-001"),
    ]


async def test_full_outbox_drops_lowest_severity_first_and_says_so(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # The webhook is down (nothing listens), so nothing is delivered and the tiny budget fills.
    site, port = write_site(tmp_path, mosquitto.port, webhook_port=free_port(), devices=10)
    text = site.read_text().replace("commit_interval_ms = 2", "commit_interval_ms = 2\nbudget_mb = 0.01")
    site.write_text(text.replace('severity = "major"', 'severity = "minor"'))
    async with running(site) as gw, publisher(mosquitto.port) as pub:
        # Only the broker link: the webhook link never comes up.
        await until(lambda: gw.supervisors[0].health.state.value == "connected", 10, "the broker link")
        for n in range(12):
            for i in range(10):
                pub.publish(f"t/river/{i:03d}/level", reading(4.0 if n % 2 == 0 else 2.0), qos=1)
            await asyncio.sleep(0.05)
        await until(lambda: gw.outbox.dropped_total > 0, 10, "the budget to overflow")
        await until(lambda: any(i.rule == "outbox-overflow" for i in gw.incidents.incidents), 5, "the fault incident")
        await gw.outbox.flush()
        _, events = await feed(port)
        _, metrics = await api(port, "GET", "/metrics")
        status, held = await api(port, "GET", "/api/v1/outbox")
    # The technician's question "how long an outage does this box hold?": with the budget full
    # at this rate, almost none, and the page says why.
    assert status == 200 and held["dropped_total"] == gw.outbox.dropped_total
    assert held["budget_bytes"] == int(0.01 * 1024 * 1024) and held["undelivered_events"] > 0
    assert held["intake_bytes_per_hour"] > 0 and held["covers_hours"] is not None and held["covers_hours"] < 0.1
    fault = [e for e in events if e["data"]["category"] == "gateway-fault"]
    assert fault and fault[0]["data"]["severity"] == "major"
    assert "undelivered events dropped" in fault[0]["data"]["summary"]
    # What survived: the budget is respected, and the major fault outlived the minor breaches,
    # of which the newest are kept (the oldest went first).
    assert sum(len(json.dumps(e)) for e in events) < 0.01 * 1024 * 1024 * 1.5
    minor = [int(e["sequence"]) for e in events if e["data"]["severity"] == "minor"]
    assert minor == sorted(minor) and min(minor) > gw.outbox.dropped_total
    assert f"gateway_outbox_dropped_events_total {float(gw.outbox.dropped_total)}" in metrics
