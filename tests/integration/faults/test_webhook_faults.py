"""A webhook receiver that redirects or refuses: nothing counts as delivered that was not received,
and a receiver refusing everything stops the pusher with every event kept."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_core.signals import Category
from gateway.cli import main as cli_main
from gateway.upstream import REFUSALS_BEFORE_HALT
from tests.conftest import Mosquitto, free_port
from tests.integration.gateway.conftest import connected, publisher, running, until, write_site


@dataclass
class Hostile:
    """A receiver that redirects POSTs (to a page that answers anything with 200) or refuses some."""

    port: int
    redirect: bool = False
    refuse: set[int] = field(default_factory=set)  # sequences answered with 422
    refuse_all: bool = False
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refusals: int = 0
    followed: int = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.redirect:
            raise web.HTTPMovedPermanently(f"http://127.0.0.1:{self.port}/moved")
        event = json.loads(body)
        if self.refuse_all or int(event["sequence"]) in self.refuse:
            self.refusals += 1
            return web.Response(status=422, text="schema mismatch")
        self.accepted.append(event)
        return web.Response(status=204)

    async def moved(self, _request: web.Request) -> web.Response:
        self.followed += 1
        return web.Response(status=200, text="ok")


@asynccontextmanager
async def hostile() -> AsyncIterator[Hostile]:
    rec = Hostile(free_port())
    app = web.Application()
    app.router.add_post("/hook", rec.hook)
    app.router.add_route("*", "/moved", rec.moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


def reading(v: float) -> str:
    return json.dumps({"v": v, "ts": time.time()})


async def test_a_redirect_is_a_failure_that_names_the_new_address(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with hostile() as rec:
        rec.redirect = True
        site, _port = write_site(tmp_path, mosquitto.port, webhook_port=rec.port)
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            pub.publish("t/river/000/level", reading(4.0), qos=1)
            hook = next(s for s in gw.supervisors if s.name == "upstream:webhook")
            await until(lambda: "redirect" in (hook.health.last_error or ""), 10, "the redirect reported")
            # read at once: the next attempt clears the error when the link comes up again
            err = hook.health.last_error or ""
            await asyncio.sleep(1.0)
            assert gw.outbox.committed_seq >= 1
            assert gw.outbox.cursor("webhook") == 0, "a redirected POST was counted as delivered"
            assert rec.followed == 0
            assert f"http://127.0.0.1:{rec.port}/moved" in err and "upstream.webhook.url" in err


async def test_a_receiver_refusing_everything_keeps_the_events_and_halts(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with hostile() as rec:
        rec.refuse_all = True
        site, _port = write_site(tmp_path, mosquitto.port, webhook_port=rec.port)
        async with running(site) as gw, publisher(mosquitto.port) as pub:
            await connected(gw)
            for v in (4.0, 3.0):  # opened, resolved
                pub.publish("t/river/000/level", reading(v), qos=1)
                await asyncio.sleep(0.1)
            hook = next(s for s in gw.supervisors if s.name == "upstream:webhook")
            await until(lambda: hook.health.halted, 20, "the webhook halted")
            assert hook.health.state.value == "failed"
            assert "HTTP 422" in (hook.health.last_error or "") and "outbox skip" in (hook.health.last_error or "")
            assert rec.refusals == REFUSALS_BEFORE_HALT
            assert gw.outbox.cursor("webhook") == 0, "refused events were drained"
            faults = [i for i in gw.incidents.open if i.category is Category.GATEWAY_FAULT]
            assert len(faults) == 1 and "refused" in faults[0].summary
            # Halted means halted: no more requests.
            await asyncio.sleep(1.5)
            assert rec.refusals == REFUSALS_BEFORE_HALT

            # The receiver is fixed for everything but the first event, which the operator skips.
            rec.refuse_all, rec.refuse = False, {1}
            rc = await asyncio.to_thread(
                cli_main, ["outbox", "skip", "--config", str(site), "--consumer", "webhook", "--seq", "1"]
            )
            assert rc == 0
            gw.reload()
            committed = gw.outbox.committed_seq
            await until(lambda: gw.outbox.cursor("webhook") >= committed, 10, "the rest delivered")
            assert [int(e["sequence"]) for e in rec.accepted][:2] == [2, 3]
            await until(
                lambda: all(i.category is not Category.GATEWAY_FAULT for i in gw.incidents.open), 5, "fault resolved"
            )
