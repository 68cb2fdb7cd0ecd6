"""A real three-node NATS JetStream cluster (Debian's nats-server) on loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from bench._nats import NatsCluster, nats_server_binary
from examples.county_consumer import ensure_stream

STREAM = "INCIDENTS"
SUBJECTS = "township.>"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (scripts/test installs Debian's package)")
    with NatsCluster(tmp_path / "nats") as c:
        yield c


@pytest.fixture
async def stream(cluster: NatsCluster) -> NatsCluster:
    """The cluster with the platform's stream (R3) and presence bucket in place."""
    nc = await nats.connect(servers=cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        async with asyncio.timeout(60):
            await ensure_stream(nc.jetstream(), stream=STREAM, subjects=[SUBJECTS], replicas=3)
    finally:
        await nc.close()
    return cluster
