"""The [[upstream.gb28181]] table and camera channel ids: bounds, cross-checks, config check."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_config import load
from edge_core.errors import ConfigError
from gateway.cli import main
from gateway.links import push_consumers
from tests.sites import GB_BOX

SITE = (
    GB_BOX
    + """
[api]
token = {{ file = "token" }}

[[upstream.gb28181]]
id = "county"
platform_id = "51042100002000000001"
host = "127.0.0.1"
device_id = "51042110302000000101"
password = {{ file = "gbpw" }}
{extra}

[[devices]]
kind = "onvif"
id = "cam-1"
host = "192.168.1.10"
national_id = "{nid}"
"""
)


def write(tmp_path: Path, extra: str = "", nid: str = "51042110301320000001") -> Path:
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "gbpw").write_text("12345678\n")
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(extra=extra, nid=nid))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.problems


def test_defaults_and_derived_realm(tmp_path: Path) -> None:
    cfg = load(write(tmp_path)).config
    (gb,) = cfg.upstream.gb28181
    assert (gb.port, gb.transport, gb.charset, gb.version) == (5060, "udp", "GB2312", "2016")
    assert (gb.register_expires_s, gb.keepalive_s, gb.keepalive_misses) == (3600, 60, 3)
    assert gb.domain == "5104210000"
    assert push_consumers(cfg) == ["gb28181:county"]  # its own durable cursor


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('transport = "sctp"', "transport"),
        ('charset = "latin-1"', "charset"),
        ('version = "2011"', "version"),
        ("register_expires_s = 10", "register_expires_s"),
        ("keepalive_s = 1", "keepalive_s"),
        ("keepalive_misses = 0", "keepalive_misses"),
        ("port = 70000", "port"),
        ('port = "5060"', "port"),
        ('realm = "bad realm"', "realm"),
    ],
)
def test_bounds_name_the_field_and_line(tmp_path: Path, extra: str, field: str) -> None:
    (line,) = problems(write(tmp_path, extra))
    assert f"upstream.gb28181[0].{field}" in line and "site.toml:" in line


def test_a_pasted_url_is_not_a_host(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace('host = "127.0.0.1"', 'host = "sip://10.0.0.1"'))
    (line,) = problems(path)
    assert "upstream.gb28181[0].host" in line and "is not a host" in line


def test_ids_must_be_20_digits_and_distinct(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("51042110302000000101", "5104211030200000010"))
    assert any("device_id" in p for p in problems(path))
    path = write(tmp_path)
    path.write_text(path.read_text().replace("51042110302000000101", "51042100002000000001"))
    assert any("must differ" in p for p in problems(path))


def test_camera_channel_id_needs_type_code_132(tmp_path: Path) -> None:
    (line,) = problems(write(tmp_path, nid="51042110301310000001"))
    assert "devices[0]" in line and "type code 131" in line and "132" in line


def test_channel_ids_name_one_thing(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(
        path.read_text()
        + '\n[[devices]]\nkind = "onvif"\nid = "cam-2"\nhost = "192.168.1.11"\nnational_id = "51042110301320000001"\n'
    )
    assert any("also 'cam-1'" in p for p in problems(path))


def test_config_check_says_what_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "GB/T 28181 county: registers as 51042110302000000101 with 51042100002000000001" in out
    assert "127.0.0.1:5060/udp" in out and "1 camera channel" in out


def test_config_check_finds_a_missing_password_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    (tmp_path / "gbpw").unlink()
    assert main(["config", "check", str(path)]) == 2
    assert "upstream.gb28181[0].password" in capsys.readouterr().err
