"""`edge-gateway config check` on a valid file: one line a technician reads as it is."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from gateway.cli import main
from tests.sites import one_terminal_site


def test_the_summary_counts_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("t")
    site = tmp_path / "site.toml"
    site.write_text(one_terminal_site())
    assert main(["config", "check", str(site)]) == 0
    assert capsys.readouterr().out == f"{site}: OK (1 device, 0 rules, 1 broker, box box-1)\n"


def test_version_is_what_pip_installed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"edge-gateway {importlib.metadata.version('township-edge-gateway')}"
