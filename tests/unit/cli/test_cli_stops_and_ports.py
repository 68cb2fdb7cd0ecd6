"""`edge-gateway run` and `demo`: a taken API port is one line naming what to change."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from tests.sites import one_terminal_site


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_run_names_the_field_when_the_api_port_is_taken(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("t")
    site = tmp_path / "site.toml"
    site.write_text(
        one_terminal_site(
            tmp_path / "state",
            api=f'listen = "127.0.0.1"\nport = {taken_port}\ntoken = {{ file = "token" }}',
            broker="port = 1",
        )
    )
    assert main(["run", "--config", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site}:8: api.port: cannot listen on 127.0.0.1:{taken_port}: Address already in use" in err, err
    assert "stop it or choose another port" in err
    assert "Traceback" not in err


def test_demo_refuses_a_taken_port_before_starting_anything(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--port", str(taken_port)]) == 2
    err = capsys.readouterr().err
    assert f"demo: cannot listen on 127.0.0.1:{taken_port}" in err and "pass --port N" in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no demo folder was made, no simulator started
