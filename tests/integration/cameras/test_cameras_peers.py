"""Against software we did not write: daniela-hase/onvif-server as a camera our driver drives, and
npm's ``onvif`` client (0.8.x) driving our simulator.

``scripts/test`` installs both into ``.venv/peers`` (from ../shared/peers and the npm registry);
these tests skip, saying why, when ../shared/peers, node, or the installed copies are absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import PASSWORD, USER

_ROOT = Path(__file__).resolve().parents[3]
SHARED_PEERS = _ROOT.parent / "shared" / "peers"
INSTALLED = _ROOT / ".venv" / "peers"
ONVIF_SERVER = INSTALLED / "onvif-server"
NPM_ONVIF = INSTALLED / "npm-onvif" / "node_modules" / "onvif"


def _missing(installed: Path) -> str | None:
    if not SHARED_PEERS.is_dir():
        return f"third-party peers not available: {SHARED_PEERS} is absent"
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt install nodejs npm); scripts/test installs it"
    if not installed.is_dir():
        return f"{installed} is not installed: run scripts/test (it installs the peers)"
    return None


def _netns_missing() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip missing (Debian: util-linux, iproute2): cannot make a network namespace"
    r = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10, check=False)
    if r.returncode != 0:
        return f"cannot create a user and network namespace here: {r.stderr.decode(errors='replace').strip()[:120]}"
    return None


@pytest.fixture(scope="module")
def onvif_server_run() -> dict[str, Any]:
    """One run of the peer in a namespace holding only lo (it binds 0.0.0.0:3702 for discovery)."""
    reason = _missing(ONVIF_SERVER) or _netns_missing()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(_ROOT / ".venv" / "numba-cache"))}
    r = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "tests.integration.cameras._netns_peer", str(ONVIF_SERVER)],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    lines = r.stdout.decode().strip().splitlines()
    assert lines, f"no result from the namespace run: {r.stderr.decode(errors='replace')[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in result, result["error"]
    return result


def test_onvif_server_is_discovered_by_multicast_in_a_namespace(onvif_server_run: dict[str, Any]) -> None:
    found = onvif_server_run["discovered"]
    assert [c["address"] for c in found] == ["127.0.0.1:8081"]
    assert found[0]["xaddrs"] == ["http://127.0.0.1:8081/onvif/device_service"]
    assert found[0]["info"] == "device"  # GetDeviceInformation answered without credentials


def test_onvif_server_profiles_uris_clock_and_snapshot(onvif_server_run: dict[str, Any]) -> None:
    run = onvif_server_run
    assert run["info"] == {"manufacturer": "Onvif", "model": "Cardinal"}
    assert abs(run["clock_skew_s"]) < 5 and abs(run["skew_again"]) < 5
    assert {p["token"]: p["width"] for p in run["profiles"]} == {"main_stream": 640, "sub_stream": 320}
    assert all(p["stream_uri"].startswith("rtsp://127.0.0.1:8554/") for p in run["profiles"])
    assert all(p["valid_s"] == 30.0 for p in run["profiles"])  # its URIs expire: refreshed on reopen
    assert run["snapshot_type"] == "image/png"
    assert run["live_view_jpeg"]  # the live view (snapshot.jpg) stays JPEG


def test_onvif_server_without_events_cannot_gate_and_the_camera_says_so(onvif_server_run: dict[str, Any]) -> None:
    assert "no ONVIF Events service" in onvif_server_run["events_unsupported"]
    camera = onvif_server_run["camera"]
    assert camera["gating_in_force"] == "always"
    assert "cannot gate" in camera["gating_fallback"]
    assert camera["analysed"] >= 3


@pytest.mark.parametrize("digest_only", [False, True], ids=["username-token", "digest-only"])
async def test_npm_onvif_client_drives_our_simulator(digest_only: bool) -> None:
    reason = _missing(NPM_ONVIF)
    if reason:
        pytest.skip(reason)
    script = _ROOT / "tests" / "peers" / "onvif_client.js"
    async with OnvifCameraSim(username=USER, password=PASSWORD, digest_only=digest_only) as sim:
        sim.tamper(True)
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            str(NPM_ONVIF),
            "127.0.0.1",
            str(sim.port),
            USER,
            PASSWORD,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert "error" not in result, (result["error"], err.decode(errors="replace")[-500:])
    assert result["profiles"] == ["main", "sub"]
    assert result["videoSources"] == 1
    assert result["device"]["serialNumber"] == "SIM0001"
    assert abs(result["clockSkewS"]) < 5
    assert result["streamUri"] == "rtsp://127.0.0.1:8554/main"
    assert result["snapshotUri"].endswith("/onvif/snapshot?profile=main")
    assert "onvif://www.onvif.org/hardware/SIM-CAM-1" in result["scopes"]
    assert "tns1:RuleEngine/TamperDetector/Tamper" in result["events"]
    assert sim.auth_failures == 0
