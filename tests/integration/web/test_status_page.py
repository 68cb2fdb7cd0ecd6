"""The technician's status page in a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import TOKEN, api, connected, feed, publisher, running, write_site
from tests.integration.web.browser import Page, browser


@asynccontextmanager
async def one_incident(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[tuple[int, str, Page]]:
    """A gateway with one open threshold incident, and a browser: (API port, incident id, page)."""
    site, port = write_site(tmp_path, mosquitto.port)
    async with running(site) as gw, publisher(mosquitto.port) as pub, browser(tmp_path / "profile") as page:
        await connected(gw)
        pub.publish("t/river/000/level", json.dumps({"v": 4.2, "ts": time.time()}), qos=1)
        _, events = await feed(port, wait=5)
        yield port, events[0]["data"]["incident_id"], page


async def test_page_shows_links_incidents_and_feed_and_acknowledges(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with one_incident(mosquitto, tmp_path) as (port, incident_id, page):
        # Without a token the page asks for one and shows nothing.
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for("!document.querySelector('#login').hidden")
        assert await page.js("document.querySelector('#main').hidden")

        await page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
        await page.wait_for("document.querySelectorAll('#incidents tbody tr').length === 1")
        await page.wait_for("document.querySelectorAll('#feed li').length >= 1")
        assert await page.js("document.querySelector('#box').textContent") == "box-1 · Panlian / Xinhe"
        link_state = await page.js("document.querySelector('[data-link=\"mqtt:village\"] .pill').textContent")
        assert link_state == "connected"
        row = await page.js(f"document.querySelector('[data-incident=\"{incident_id}\"]').innerText")
        assert "threshold-breach" in row and "level 4.2 m above 3.5" in row and "open" in row
        assert "opened threshold-breach river-000" in await page.js("document.querySelector('#feed li').textContent")
        # How long an uplink outage the box holds, in words a technician reads. Pull-only site:
        # the feed's cursor moves when the platform asks for what comes after, so one is owed.
        await page.wait_for("document.querySelector('#outbox').textContent.includes('holds')")
        outbox_line = await page.js("document.querySelector('#outbox').textContent")
        assert outbox_line.startswith("Outbox ") and "of uplink outage" in outbox_line, outbox_line
        assert "1 event owed upstream" in outbox_line and "days of uplink outage" in outbox_line, outbox_line
        # The token never stays in the address bar.
        assert "token" not in await page.js("location.href")
        await page.screenshot(tmp_path / "page.png")

        # Acknowledge from the page (the prompt answered as a technician would).
        await page.js("window.prompt = () => 'tech-wang'")
        await page.js(f"document.querySelector('[data-incident=\"{incident_id}\"] button').click()")
        await page.wait_for(
            f"document.querySelector('[data-incident=\"{incident_id}\"]').innerText.includes('acknowledged')"
        )
        # The same page in Chinese, as the header's switch sets it: the words change, the codes stay.
        await page.js("localStorage.setItem('edge-lang', 'zh-CN'); location.reload()")
        await page.wait_for("document.querySelector('#outbox').textContent.startsWith('发件箱')")
        assert await page.js("document.querySelector('#ready').textContent") == "就绪"
        assert await page.js("document.querySelector('[data-link=\"mqtt:village\"] .pill').textContent") == "已连接"
        assert "threshold-breach" in await page.js(
            f"document.querySelector('[data-incident=\"{incident_id}\"]').innerText"
        )
        await page.screenshot(tmp_path / "page-zh.png")
        _, body = await api(port, "GET", f"/api/v1/incidents/{incident_id}")
    assert body["status"] == "acknowledged"
    assert body["feedback"]["acknowledged"]["by"] == "tech-wang"
    assert (tmp_path / "page.png").stat().st_size > 10_000


async def test_a_refused_acknowledgement_is_said_not_passed_over(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with one_incident(mosquitto, tmp_path) as (port, incident_id, page):
        await page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
        await page.wait_for(f"document.querySelector('[data-incident=\"{incident_id}\"] button') !== null")
        # The box answers the ack as it does for an incident it no longer holds.
        await page.js(
            "window.prompt = () => 'tech-wang'; window.alerts = []; window.alert = (m) => window.alerts.push(m);"
            "const realFetch = window.fetch; window.fetch = (url, opts) => opts && opts.method === 'POST'"
            " ? Promise.resolve(new Response(JSON.stringify({detail: \"no live incident 'x'\"}), {status: 404}))"
            " : realFetch(url, opts);"
        )
        await page.js(f"document.querySelector('[data-incident=\"{incident_id}\"] button').click()")
        await page.wait_for("window.alerts.length === 1")
        assert await page.js("window.alerts[0]") == "Acknowledging failed: no live incident 'x'"


async def test_logging_in_again_restarts_the_page_instead_of_doubling_it(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with one_incident(mosquitto, tmp_path) as (port, _incident_id, page):
        await page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
        await page.wait_for("document.querySelectorAll('#feed li').length === 1")
        # What the login form does after a 401 and a new token: start() again.
        await page.js("start()")
        await page.wait_for("generation === 2 && timers.length === 3")
        _, more = await api(port, "GET", "/api/v1/events?after=1&wait=0&peek=1")
        await page.js("new Promise((r) => setTimeout(r, 1500))")
        assert await page.js("document.querySelectorAll('#feed li').length") == 1 + len(more)
