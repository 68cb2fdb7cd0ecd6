"""`edge-gateway doctor` run by hand checks the credentials against the installed unit, and says in
words what a technician can act on: a site file that is not where it looks, a refused port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from tests.sites import one_terminal_site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "api_token").write_text("t")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: refused
        path = tmp_path / "site.toml"
        path.write_text(
            one_terminal_site(
                tmp_path / "state",
                api=f'port = {s.getsockname()[1]}\ntoken = {{ credential = "api_token" }}',
                broker=f'port = {s.getsockname()[1]}\nusername = "gw"\npassword = {{ credential = "broker_password" }}',
            )
        )
        yield path


def _doctor(site: Path, unit: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["doctor", "--config", str(site), "--unit", str(unit)]) == 1
    return capsys.readouterr().out


def test_a_credential_the_unit_does_not_load_is_named_with_the_line_to_add(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(f"[Service]\nLoadCredential=api_token:{tmp_path}/creds/api_token\n")
    out = _doctor(site, unit, capsys)
    assert f"OK    credential 'api_token': {tmp_path}/creds/api_token" in out, out
    assert f"FAIL  credential 'broker_password': the site file names it, but {unit} does not load it" in out
    assert "add LoadCredential=broker_password:/etc/edge-gateway/credentials/broker_password" in out
    assert "not checked here" not in out


def test_a_missing_credential_file_fails_even_when_the_site_does_not_use_it(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(
        f"[Service]\nLoadCredential=api_token:{tmp_path}/creds/api_token\n"
        f"LoadCredential=webhook_secret:{tmp_path}/creds/webhook_secret\n"
    )
    dropin = tmp_path / "edge-gateway.service.d"
    dropin.mkdir()
    (dropin / "site.conf").write_text(f"[Service]\nLoadCredential=broker_password:{tmp_path}/creds/broker_password\n")
    out = _doctor(site, unit, capsys)
    missing = "does not exist, and systemd will not start the service without it"
    assert f"FAIL  credential 'broker_password': {tmp_path}/creds/broker_password {missing}" in out, out
    assert f"FAIL  credential 'webhook_secret': {tmp_path}/creds/webhook_secret {missing}" in out
    assert "the site file does not use it, an empty file will do" in out


def test_an_empty_secret_fails_whether_file_or_credential(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "creds" / "api_token").write_text("\n")
    (tmp_path / "creds" / "broker_password").write_text("")
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(f"[Service]\nLoadCredential=api_token:{tmp_path}/creds/api_token\n")
    (tmp_path / "edge-gateway.service.d").mkdir()
    (tmp_path / "edge-gateway.service.d" / "a.conf").write_text(
        f"[Service]\nLoadCredential=broker_password:{tmp_path}/creds/broker_password\n"
    )
    out = _doctor(site, unit, capsys)
    assert f"FAIL  credential 'api_token': {tmp_path}/creds/api_token is empty" in out, out
    assert f"FAIL  credential 'broker_password': {tmp_path}/creds/broker_password is empty" in out
    site.write_text(site.read_text().replace('{ credential = "api_token" }', '{ file = "creds/api_token" }'))
    out = _doctor(site, unit, capsys)
    assert f"FAIL  {site}:8: api.token: secret file {tmp_path}/creds/api_token is empty" in out, out
    assert "head -c 24 /dev/urandom | base64" in out


def test_without_the_unit_credentials_stay_unchecked_warnings(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _doctor(site, tmp_path / "absent.service", capsys)
    assert "WARN  " in out and "api.token: not checked here" in out, out


def test_a_refused_connection_is_said_in_words(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _doctor(site, tmp_path / "absent.service", capsys)
    assert "connection refused: the host is up but nothing listens on that port" in out, out
    assert "Connect call failed" not in out


def test_a_missing_site_file_says_where_doctor_looked_and_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--config", str(tmp_path / "site.toml")]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  site file {tmp_path / 'site.toml'} does not exist" in out
    assert "pass --config FILE" in out and "cannot read" not in out


def test_a_credential_with_a_unit_default_may_be_absent_unless_the_site_uses_it(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "creds" / "broker_password").write_text("pw")
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(
        "[Service]\n"
        f"LoadCredential=api_token:{tmp_path}/creds/api_token\n"
        f"LoadCredential=broker_password:{tmp_path}/creds/broker_password\n"
        f"LoadCredential=webhook_secret:{tmp_path}/creds/webhook_secret\n"
        "SetCredential=webhook_secret:\\n\n"
    )
    out = _doctor(site, unit, capsys)
    assert (
        f"OK    credential 'webhook_secret': not used by this site ({tmp_path}/creds/webhook_secret may stay absent)"
        in out
    )
    # The broker's password now comes through the same name, with the default standing in.
    (tmp_path / "creds" / "broker_password").unlink()
    unit.write_text(unit.read_text() + "SetCredential=broker_password:\\n\n")
    out = _doctor(site, unit, capsys)
    assert (
        f"FAIL  credential 'broker_password': {tmp_path}/creds/broker_password does not exist: the service gets the "
        "unit's empty default, and an empty secret is refused"
    ) in out, out
