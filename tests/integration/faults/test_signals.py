"""Real signals at the worst moments of a start: the process always ends by itself, in time."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Mosquitto
from tests.integration.gateway.conftest import api, write_site
from tests.integration.gateway.test_process import start_gateway, wait_ready


def _catches_sigterm(pid: int) -> bool:
    """The process has its own SIGTERM handler (Linux: bit 15 of SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.parametrize("after_s", [0.3, 0.8, 1.5])
def test_sigterm_early_in_the_start_ends_it_cleanly(mosquitto: Mosquitto, tmp_path: Path, after_s: float) -> None:
    site, _port = write_site(tmp_path, mosquitto.port)
    proc = start_gateway(site)
    # Counted from when the interpreter can catch the signal at all: before that (its own start,
    # a few hundred ms on a loaded box) SIGTERM kills any Python process, and systemd counts that
    # death as a clean stop anyway.
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(after_s)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0, f"exit {rc} (negative: killed by the signal): {err[-2000:]}"


async def test_a_stop_during_the_first_kernel_compilation_does_not_wait_for_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    # An empty cache: the kernels compile, which takes tens of seconds on a small box.
    proc = start_gateway(site, env={"NUMBA_CACHE_DIR": str(tmp_path / "cold-cache")})
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as s:
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the API never answered"
                try:
                    # The API answers while the kernels compile.
                    async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0, f"exit {rc}: {err[-2000:]}"
    # systemd/edge-gateway.service: TimeoutStopSec=15, and the flush takes its share of that.
    assert took < 8.0, f"stop took {took:.1f} s"
    assert "stopped while the kernels compiled" in err


@pytest.mark.parametrize(
    "junk",
    [
        "\nx = " + "[" * 50_000 + "\n",  # RecursionError in tomllib
        "\nx = " + "7" * 5000 + "\n",  # ValueError from int()
        '\nnotes = """\n[' + " " * 8000 + '\n"""\n',  # the header regex's cubic case
    ],
    ids=["deep", "long-number", "bracket-spaces"],
)
async def test_sighup_with_a_broken_site_file_keeps_the_daemon_running(
    mosquitto: Mosquitto, tmp_path: Path, junk: str
) -> None:
    site, port = write_site(tmp_path, mosquitto.port)
    proc = start_gateway(site)
    try:
        await wait_ready(port, proc)
        site.write_text(site.read_text() + junk)
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        t0 = time.monotonic()
        status, _ = await api(port, "GET", "/healthz")
        assert status == 200 and time.monotonic() - t0 < 1.0
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0
    assert "reload refused, keeping the running rules" in err
