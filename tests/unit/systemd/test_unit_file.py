"""The unit file: what the operations team relies on is there, and systemd itself accepts it."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_config import check_secrets, load
from gateway.zones import save_zones
from tests.unit.gateway.test_zones import CAMERA, HEAD, NEW

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "edge-gateway.service"


def unit() -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNIT)
    return cp


def test_service_is_notify_watchdog_restart_with_its_directories_and_credentials() -> None:
    svc = unit()["Service"]
    assert svc["Type"] == "notify"
    assert int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "on-failure"
    assert svc["StateDirectory"] == "edge-gateway"
    assert svc["ConfigurationDirectory"] == "edge-gateway"
    assert "run --config ${CONFIGURATION_DIRECTORY}/site.toml" in svc["ExecStart"]
    assert "LoadCredential" in UNIT.read_text()
    # SIGTERM must have time to flush the outbox (the daemon promises 5 s).
    assert int(svc["TimeoutStopSec"]) > 5


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # Point ExecStart at a binary that exists here, so only the unit's own syntax is judged.
    binary = str(Path(sys.executable).parent / "edge-gateway")
    local = tmp_path / "edge-gateway.service"
    local.write_text(UNIT.read_text().replace("/opt/edge-gateway/bin/edge-gateway", binary))
    out = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, check=False)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "edge-gateway.service" in line]
    assert problems == [], problems


def test_sandboxing_keeps_the_exposure_score_low() -> None:
    # systemd's own audit of the sandboxing (0 = locked down, 10 = none): 1.9 when written.
    # Dropping PrivateDevices, RestrictAddressFamilies or the system call filter takes it over
    # 2.0 and fails here (DynamicUser already implies some others, such as ProtectSystem).
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(UNIT)], capture_output=True, text=True, check=False
    )
    level = [line for line in out.stdout.splitlines() if "Overall exposure level" in line]
    assert out.returncode == 0, level or out.stderr
    assert level and " OK" in level[0], level


def test_only_the_api_token_is_required_and_an_unsigned_site_starts_without_a_webhook_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = UNIT.read_text()
    loads = [line.split("=", 1)[1].split(":", 1)[0] for line in text.splitlines() if line.startswith("LoadCredential=")]
    defaults = {
        line.split("=", 1)[1].split(":", 1)[0]: line.split(":", 1)[1]
        for line in text.splitlines()
        if line.startswith("SetCredential=")
    }
    # systemd refuses to start a service whose LoadCredential= file is missing, unless a
    # SetCredential= of the same name stands in: only the API token may be required.
    assert sorted(loads) == ["api_token", "webhook_secret"]
    assert defaults == {"webhook_secret": "\\n"}
    # What the service then sees for webhook_secret is one newline: a site that signs with it is
    # refused by the unit's ExecStartPre (config check) instead of running unsigned.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api_token").write_text("t")
    (creds / "webhook_secret").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    site = tmp_path / "site.toml"
    example = UNIT.parents[1] / "edge_config" / "examples" / "village-water.toml"
    site.write_text(example.read_text())
    problems, _notes = check_secrets(load(site))
    assert len(problems) == 1 and problems[0].endswith("upstream.webhook.secret: credential 'webhook_secret' is empty")


def _tree(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


def test_the_service_may_write_what_zone_save_writes_and_nothing_more_of_etc(tmp_path: Path) -> None:
    svc = unit()["Service"]
    folder = "/etc/edge-gateway"  # ${CONFIGURATION_DIRECTORY}, where ExecStart's site file is
    assert svc["ExecStart"].endswith("--config ${CONFIGURATION_DIRECTORY}/site.toml")
    assert svc["ReadWritePaths"] == folder
    assert svc["ReadOnlyPaths"] == f"-{folder}/credentials"
    # the rest of the sandbox is unchanged
    hardening = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes"}
    assert {k: svc[k] for k in hardening} == hardening
    assert svc["NoNewPrivileges"] == svc["RestrictSUIDSGID"] == "yes" and svc["CapabilityBoundingSet"] == ""
    # a static user owns what Save leaves in /etc: a dynamic UID would be recycled to another unit
    assert svc["User"] == svc["Group"] == "edge-gateway" and svc["DynamicUser"] == "yes"
    sysusers = (UNIT.parent / "edge-gateway.sysusers.conf").read_text()
    assert re.search(r"^u edge-gateway - ", sysusers, re.MULTILINE), sysusers
    # What Save writes: the site file (a new one, renamed over it) and one backup, in its folder.
    etc = tmp_path / "etc" / "edge-gateway"
    (etc / "credentials").mkdir(parents=True)
    (etc / "credentials" / "api_token").write_text("t\n")
    site = etc / "site.toml"
    site.write_text(HEAD.replace('{ file = "api_token" }', '{ file = "credentials/api_token" }') + CAMERA)
    before = _tree(tmp_path)
    backup = save_zones(load(site), "gate", NEW)
    after = _tree(tmp_path)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {site, backup} and backup.parent == etc, changed
