"""The [upstream.nats] section: what `config check` refuses, and where it says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_config import load
from gateway.cli import main
from gateway.links import push_consumers
from tests.sites import one_terminal_site


def _site(tmp_path: Path, nats: str, township: str = "t") -> Path:
    (tmp_path / "token").write_text("t")
    text = one_terminal_site().replace('township = "t"', f'township = "{township}"') + "[upstream.nats]\n" + nats
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_a_nats_uplink_is_one_more_consumer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path, 'servers = ["nats://127.0.0.1:4222", "tls://10.1.0.12:4222"]\n')
    assert main(["config", "check", str(site)]) == 0
    assert push_consumers(load(site).config) == ["nats"]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("nats", "township", "words"),
    [
        ('servers = ["10.1.0.11:4222"]\n', "t", "write a server as nats://host:port or tls://host:port"),
        ('servers = ["nats://u:p@10.1.0.11:4222"]\n', "t", "credentials never sit in a server URL"),
        ("servers = []\n", "t", "upstream.nats.servers"),
        ('servers = ["nats://a:4222"]\nsubject_prefix = "miyi.>"\n', "t", "no '*' or '>'"),
        ('servers = ["nats://a:4222"]\nuser = "box"\nnkey_seed = { file = "seed" }\n', "t", "not both"),
        ('servers = ["nats://a:4222"]\npassword = { file = "pw" }\n', "t", "'password' needs 'user'"),
        ('servers = ["nats://a:4222"]\ntls = {}\n', "t", "no server is tls://"),
        ('servers = ["nats://a:4222"]\nack_timeout_s = 0\n', "t", "upstream.nats.ack_timeout_s"),
        # A township in hanzi cannot be a subject token: the file must name one.
        ('servers = ["nats://a:4222"]\n', "盘莲", "set upstream.nats.township"),
    ],
)
def test_config_check_names_the_nats_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nats: str, township: str, words: str
) -> None:
    site = _site(tmp_path, nats, township)
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "upstream.nats" in err


def test_a_hanzi_township_with_a_subject_token_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path, 'servers = ["nats://a:4222"]\ntownship = "panlian"\n', "盘莲")
    assert main(["config", "check", str(site)]) == 0
    capsys.readouterr()
