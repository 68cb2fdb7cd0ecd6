"""`edge-gateway doctor` names what is wrong and how to fix it, and passes a healthy site."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from tests.sites import one_terminal_site


def _site(tmp_path: Path, api_port: int, mqtt_port: int) -> str:
    return one_terminal_site(
        tmp_path / "state", api=f'port = {api_port}\ntoken = {{ file = "token" }}', broker=f"port = {mqtt_port}"
    )


def _port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def test_doctor_reports_an_unreachable_broker_and_missing_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = _port()  # bound but not listening: connections are refused
    site = tmp_path / "site.toml"
    site.write_text(_site(tmp_path, closed.getsockname()[1], closed.getsockname()[1]))
    assert main(["doctor", "--config", str(site)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  MQTT broker village not reachable at 127.0.0.1" in out
    assert "is the broker running" in out
    assert "FAIL  " in out and "api.token: secret file missing" in out
    assert "2 problem(s)" in out
    closed.close()


def test_doctor_passes_a_healthy_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listening = _port()
    listening.listen()
    (tmp_path / "token").write_text("t")
    (tmp_path / "state").mkdir()
    site = tmp_path / "site.toml"
    site.write_text(_site(tmp_path, _port().getsockname()[1], listening.getsockname()[1]))
    assert main(["doctor", "--config", str(site)]) == 0
    out = capsys.readouterr().out
    assert "OK    MQTT broker village reachable" in out
    assert "state directory" in out and "is writable" in out
    assert "0 problem(s)" in out
    listening.close()


def _outbox_with(state: Path, rows: list[tuple[float, int]], cursor: int) -> None:
    """An outbox file as the gateway leaves it: (age in s, body size) per event, one cursor."""
    ob = Outbox(
        state / "outbox.sqlite3",
        budget_bytes=1,
        keep_delivered_s=1,
        commit_interval_s=0,
        consumers=("feed",),
        metrics=Metrics(),
    )
    ob.open()
    ob.close()
    now = time.time()
    with contextlib.closing(sqlite3.connect(state / "outbox.sqlite3")) as c, c:
        c.executemany(
            "INSERT INTO events VALUES (?, 's', 2, ?, ?)",
            [(i + 1, now - age, b"x" * size) for i, (age, size) in enumerate(rows)],
        )
        c.execute("INSERT INTO cursors VALUES ('feed', ?)", (cursor,))


# (age s, bytes): one event older than the day, delivered, then 1 MiB over the day.
DAY = [(90000.0, 100), (80000.0, 2**19), (3600.0, 2**19)]


@pytest.mark.parametrize(
    ("rows", "budget_mb", "expect"),
    [
        ([], 1, "OK    outbox: no events in the last day, so the budget holds any outage"),
        # 1 MiB over the last day, 0.5 MiB of it owed: the other half of a 1 MiB budget lasts 12 h.
        (DAY, 1, "WARN  outbox: at the last day's rate (42.7 KiB/h) the budget holds 12.0 h"),
        (DAY, 64, "OK    outbox: at the last day's rate (42.7 KiB/h) the budget holds 1,524.0 h"),
    ],
)
def test_doctor_says_how_long_an_outage_the_outbox_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[tuple[float, int]], budget_mb: int, expect: str
) -> None:
    listening = _port()
    listening.listen()
    (tmp_path / "token").write_text("t")
    (tmp_path / "state").mkdir()
    _outbox_with(tmp_path / "state", rows, cursor=2)
    site = tmp_path / "site.toml"
    text = _site(tmp_path, _port().getsockname()[1], listening.getsockname()[1])
    site.write_text(text.replace("[api]", f"[outbox]\nbudget_mb = {budget_mb}\n[api]"))
    main(["doctor", "--config", str(site)])
    out = capsys.readouterr().out
    assert expect in out, out
    if expect.startswith("WARN"):
        assert "raise [outbox] budget_mb" in out
    listening.close()


def test_doctor_lists_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[site]\nbox_id = 'x'\n")
    assert main(["doctor", "--config", str(site)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  site file" in out and f"{site}:1: site.township: Field required" in out


def test_run_refuses_to_start_without_its_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(_site(tmp_path, _port().getsockname()[1], 1))
    assert main(["run", "--config", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site}:8: api.token: secret file missing" in err
    assert not (tmp_path / "state" / "outbox.sqlite3").exists()


def test_doctor_reaches_every_nats_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    up, down = _port(), _port()
    up.listen()
    (tmp_path / "token").write_text("t")
    site = tmp_path / "site.toml"
    text = _site(tmp_path, _port().getsockname()[1], up.getsockname()[1])
    servers = f'["nats://127.0.0.1:{up.getsockname()[1]}", "nats://127.0.0.1:{down.getsockname()[1]}"]'
    site.write_text(text + f"[upstream.nats]\nservers = {servers}\n")
    main(["doctor", "--config", str(site)])
    out = capsys.readouterr().out
    assert f"OK    NATS server 127.0.0.1:{up.getsockname()[1]} reachable" in out
    # One seed down while another answers: the cluster is still reached, a warning, not a failure.
    assert f"WARN  NATS server 127.0.0.1:{down.getsockname()[1]} not reachable" in out
    assert "one seed down is fine while another answers" in out
    ports = up.getsockname()[1], down.getsockname()[1]
    up.close()
    main(["doctor", "--config", str(site)])
    out = capsys.readouterr().out
    assert all(f"FAIL  NATS server 127.0.0.1:{p} not reachable" in out for p in ports), out
    down.close()
