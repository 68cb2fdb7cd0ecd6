"""`edge-gateway warm` by hand: it says where the compiled kernels went, and whether the service
will find them there."""

from __future__ import annotations

import configparser
from collections.abc import Callable
from pathlib import Path

import pytest

import gateway.warm
from gateway.cli import main

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "edge-gateway.service"


@pytest.fixture(autouse=True)
def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def warm(progress: Callable[[str], None] = lambda _line: None) -> float:
        progress("kernels ready in 0.0 s")
        return 0.0

    monkeypatch.setattr(gateway.warm, "warm_kernels", warm)


def test_warm_says_which_cache_it_filled(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/srv/cache")
    assert main(["warm"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "cached in /srv/cache"


def test_warm_without_a_cache_dir_says_the_service_will_not_see_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert main(["warm"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "where the service does not look" in last
    # The command it suggests fills the cache the unit points the service at.
    cp = configparser.RawConfigParser(strict=False, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNIT)
    env = cp["Service"]["Environment"]
    assert env.startswith("NUMBA_CACHE_DIR=")
    assert f"run: {env} edge-gateway warm" in last
