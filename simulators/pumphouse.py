"""A pump house PLC for the demo: a real asyncua OPC-UA server on 127.0.0.1 whose outlet pressure
runs normally, then jumps up (a pressure regulator failing), then recovers, on a cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator

from asyncua import ua
from asyncua.server.server import Server

__all__ = ["NAMESPACE", "PumpHouse", "outlet_pressure", "pumphouse"]

NAMESPACE = "urn:township-edge:demo:pumphouse"
TICK_S = 0.25
CYCLE_S = 240.0


def outlet_pressure(t: float, rng: random.Random) -> float:
    """Bar at the outlet, t seconds into the run: steady with a slow swing, +1.2 bar from 90 s to
    150 s of each cycle, then back to normal.

    The fault is a jump, not a ramp: the anomaly detector scores an event by its likelihood z when
    it first reaches the alarm level, and a ramp reaches it only just (about z 3.0 to 3.2, under
    the default threshold's 3.21), so a 15 s ramp opened an incident in about 70 of 100 runs.
    """
    phase = t % CYCLE_S
    v = 3.0 + 0.05 * math.sin(t / 10) + rng.gauss(0, 0.01)
    if 90 <= phase < 150:
        v += 1.2
    return round(v, 4)


class PumpHouse:
    def __init__(self, server: Server, url: str) -> None:
        self.server = server
        self.url = url


@contextlib.asynccontextmanager
async def pumphouse(port: int) -> AsyncIterator[PumpHouse]:
    """Run the PLC until the block ends. Variables: /2:PumpHouse/2:OutletPressure (bar)."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{port}/pumphouse"
    server.set_endpoint(url)
    server.set_server_name("Demo pump house PLC")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NAMESPACE)
    house = await server.nodes.objects.add_object(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse"), ua.QualifiedName("PumpHouse", ns)
    )
    pressure = await house.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=PumpHouse.OutletPressure"), ua.QualifiedName("OutletPressure", ns), 3.0
    )
    rng = random.Random(7)

    async def run() -> None:
        t = 0.0
        while True:
            await pressure.write_value(ua.DataValue(ua.Variant(outlet_pressure(t, rng), ua.VariantType.Double)))
            await asyncio.sleep(TICK_S)
            t += TICK_S

    async with server:
        task = asyncio.create_task(run(), name="gw[demo].pumphouse")
        try:
            yield PumpHouse(server, url)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
