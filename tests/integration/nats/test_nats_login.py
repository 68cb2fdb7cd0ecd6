"""Logging in to NATS the ways a county hands out: user and password from a secret, or an NKey
seed, over TLS with the county's own CA; a wrong password is said to be one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nkeys
import pytest
from nats.js.api import StreamConfig

from bench._nats import nats_server_binary
from bench._peers import free_port
from edge_config.nats import NatsUplink
from edge_core.errors import DriverConnectError
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.upstream_nats import NatsPusher
from tests.pki import Pki, make_pki

pytestmark = pytest.mark.network


def _seed() -> tuple[str, str]:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[int, Pki, str]]:
    """One JetStream server speaking only TLS, with a password user and an NKey user."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (scripts/test installs Debian's package)")
    pki = make_pki(tmp_path / "pki")
    seed, public = _seed()
    port = free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        f'tls {{ cert_file: "{pki.server_cert}", key_file: "{pki.server_key}", ca_file: "{pki.ca_cert}" }}\n'
        f'authorization {{ users: [ {{ user: box, password: "s3cret-pw" }}, {{ nkey: {public} }} ] }}\n'
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port, pki, seed
    finally:
        proc.terminate()
        proc.wait(10)


async def _deliver_one(tmp_path: Path, cfg: NatsUplink, password: str | None, seed: str | None) -> None:
    ob = Outbox(
        tmp_path / "outbox.sqlite3",
        budget_bytes=1 << 20,
        keep_delivered_s=60,
        commit_interval_s=0,
        consumers=("nats",),
        metrics=Metrics(),
    )
    ob.open()
    writer = asyncio.create_task(ob.run())
    pusher = NatsPusher(
        ob, Metrics(), cfg, township="t", box_id="box-1", password=password, nkey_seed=seed, base_dir=tmp_path
    )
    ob.append(
        source="urn:t:box-1/d",
        severity=2,
        build=lambda s: json.dumps({"id": f"inc.{s}", "category": "intrusion"}).encode(),
    )
    run = asyncio.create_task(pusher.run(lambda: None))
    try:
        async with asyncio.timeout(20):
            while ob.cursor("nats") < 1:
                if run.done():
                    run.result()
                await asyncio.sleep(0.05)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, DriverConnectError):
            await run
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        ob.close()


async def _make_stream(port: int, pki: Pki) -> None:

    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(OSError, nats.errors.Error):
                nc = await nats.connect(f"tls://127.0.0.1:{port}", tls=ctx, user="box", password="s3cret-pw")
                break
            await asyncio.sleep(0.1)
    await nc.jetstream().add_stream(StreamConfig(name="INCIDENTS", subjects=["township.>"]))
    await nc.close()


def _cfg(port: int, pki: Pki, **login: object) -> NatsUplink:
    return NatsUplink.model_validate(
        {
            "servers": [f"tls://127.0.0.1:{port}"],
            "tls": {"ca_file": str(pki.ca_cert)},
            "presence_bucket": None,
            **login,
        }
    )


async def test_user_and_password_over_tls(secured: tuple[int, Pki, str], tmp_path: Path) -> None:
    port, pki, _ = secured
    await _make_stream(port, pki)
    await _deliver_one(tmp_path, _cfg(port, pki, user="box", password={"file": "pw"}), "s3cret-pw", None)


async def test_nkey_seed_over_tls(secured: tuple[int, Pki, str], tmp_path: Path) -> None:
    port, pki, seed = secured
    await _make_stream(port, pki)
    await _deliver_one(tmp_path, _cfg(port, pki, nkey_seed={"file": "seed"}), None, seed)


async def test_a_wrong_password_is_named(secured: tuple[int, Pki, str], tmp_path: Path) -> None:
    port, pki, _ = secured
    await _make_stream(port, pki)
    pusher = NatsPusher(
        Outbox(
            tmp_path / "o.sqlite3",
            budget_bytes=1 << 20,
            keep_delivered_s=60,
            commit_interval_s=0,
            consumers=("nats",),
            metrics=Metrics(),
        ),
        Metrics(),
        _cfg(port, pki, user="box", password={"file": "pw"}),
        township="t",
        box_id="box-1",
        password="wrong",
        nkey_seed=None,
        base_dir=tmp_path,
    )
    with pytest.raises(DriverConnectError, match="refused the login") as info:
        await pusher.run(lambda: None)
    assert info.value.code == "auth"
