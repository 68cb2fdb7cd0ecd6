"""A PLC that freezes (its TCP connection open, nothing answered): stopping the driver then must
not spend the daemon's stop budget waiting for a polite CloseSession."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from opcua_fixtures import PumpHouse, StartRun, device, free_port

from drivers.opcua import OpcUaDriver

pytestmark = pytest.mark.asyncio(loop_scope="module")


class FreezingProxy:
    """Forwards TCP to the PLC until ``freeze()``: from then on it swallows everything, both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [cw, sw]
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.frozen:
                writer.write(data)
                await writer.drain()


async def test_stopping_a_link_to_a_frozen_plc_is_quick(
    pumphouse: PumpHouse, start_run: StartRun, state_dir: Path
) -> None:
    proxy = FreezingProxy(pumphouse.port)
    await proxy.start()
    try:
        url = pumphouse.url.replace(f":{pumphouse.port}/", f":{proxy.port}/")
        driver = OpcUaDriver(device(url, timeout_s=5.0), state_dir, state_dir)
        run = await start_run(driver)
        await run.wait_connected()
        proxy.frozen = True
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run.task
        took = time.monotonic() - t0
    finally:
        await proxy.stop()
    # The daemon gives all its links 3 s to stop, within systemd's TimeoutStopSec.
    assert took < 1.5, f"stopping took {took:.1f} s"
