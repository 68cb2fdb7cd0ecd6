"""Drive Debian's headless Chromium over the DevTools protocol (websocket on loopback)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (scripts/test installs Debian's package)")


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self._ws.receive_json(), 30)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def js(self, expression: str) -> Any:
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 15) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._holds(expression):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"page never satisfied: {expression}")
            await asyncio.sleep(0.1)

    async def _holds(self, expression: str) -> bool:
        try:
            return bool(await self.js(expression))
        except RuntimeError as exc:
            # The page is reloading (a token in the address bar reloads it): ask again once the
            # new document is there, as a person looking at the page would.
            if "navigated or closed" in str(exc) or "context" in str(exc).lower():
                return False
            raise

    async def screenshot(self, path: Path) -> None:
        res = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(res["data"]))


# WebRTC between the page and the box on 127.0.0.1: Chromium leaves loopback out of its ICE
# candidates unless told, hides its host addresses behind mDNS names (resolving them would
# multicast on the LAN), and asks for a gesture before playing video.
WEBRTC_ON_LOOPBACK = (
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)


@asynccontextmanager
async def browser(profile: Path, *extra_args: str) -> AsyncIterator[Page]:
    """Headless Chromium with its DevTools endpoint on loopback; ``extra_args`` are added to its
    command line (see :data:`WEBRTC_ON_LOOPBACK`)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        "--remote-debugging-address=127.0.0.1",
        *extra_args,
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            targets: list[dict[str, Any]] = []
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                        targets = [t for t in json.loads(await r.text()) if t.get("type") == "page"]
                    if targets:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            assert targets, "Chromium did not open its DevTools endpoint"
            async with session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                yield page
    finally:
        proc.terminate()
        await proc.wait()
