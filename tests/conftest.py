"""Fixtures shared by the whole suite: free ports, the shared data folder, a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pki import Pki, make_pki

REPO = Path(__file__).resolve().parents[1]


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel each task and wait for it to end, in the order given (a pump before its writer)."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $GATEWAY_SHARED_DATA."""
    env = os.environ.get("GATEWAY_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"labelled data folder {path} is absent (set GATEWAY_SHARED_DATA to use another)")
    return path


def _mosquitto_bin() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Mosquitto:
    """A real mosquitto on 127.0.0.1, restartable on the same port.

    With ``tls``, a second listener on ``tls_port`` speaks TLS with the PKI's server certificate
    and asks every client for a certificate from the same CA (mutual TLS).
    """

    def __init__(self, binary: str, workdir: Path, tls: Pki | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.conf = workdir / "mosquitto.conf"
        # Started as root, mosquitto switches to its own user, which cannot read the key files in
        # pytest's private temporary folders: it stays whoever runs the tests (ignored if not root).
        text = (
            f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 100000\nlog_dest none\nlistener {self.port} 127.0.0.1\n"
        )
        if tls is not None:
            text += (
                f"listener {self.tls_port} 127.0.0.1\ncafile {tls.ca_cert}\ncertfile {tls.server_cert}\n"
                f"keyfile {tls.server_key}\nrequire_certificate true\n"
            )
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        last = self.tls_port or self.port  # listeners open in order: the last one means all are up
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", last), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto exited: {err}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


def _run_mosquitto(workdir: Path, tls: Pki | None = None) -> Iterator[Mosquitto]:
    binary = _mosquitto_bin()
    if binary is None:
        pytest.skip("mosquitto is not installed (scripts/test installs Debian's package)")
    broker = Mosquitto(binary, workdir, tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    yield from _run_mosquitto(tmp_path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_mosquitto(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    """mosquitto with a plain listener (``port``) and a mutual-TLS one (``tls_port``)."""
    yield from _run_mosquitto(tmp_path, pki)
