"""Site files: every example loads; every mistake is reported with file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_config import GatewayConfig, load
from edge_core.errors import ConfigError
from gateway.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "edge_config" / "examples").glob("*.toml"))

GOOD = """\
[site]
box_id = "box-1"
township = "Panlian"
village = "Xinhe"

[api]
token = { file = "token" }

[[brokers]]
id = "village"
host = "127.0.0.1"

[[devices]]
kind = "mqtt"
id = "river-1"
broker = "village"

  [[devices.points]]
  name = "level"
  topic = "river/1/level"

[[devices]]
kind = "mqtt"
id = "river-2"
broker = "village"

  [[devices.points]]
  name = "level"
  topic = "river/2/level"

  [[devices.points]]
  name = "temp"
  topic = "river/2/temp"

[[rules]]
kind = "threshold"
id = "high"
point = "level"
above = 3.5
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.problems


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_valid(example: Path) -> None:
    cfg = load(example).config
    assert cfg.devices, "an example without devices shows nothing"


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 1


def test_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(GOOD)
    cfg = load(tmp_path / "site.toml").config
    assert [d.id for d in cfg.devices] == ["river-1", "river-2"]


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        # A wrong type deep inside an array of tables: the second device's second point.
        ('name = "temp"', "name = 5", 32, "devices[1].points[1].name", "string"),
        # An unknown key is an error, not silently ignored (typos in the field are common).
        (
            'host = "127.0.0.1"',
            'host = "127.0.0.1"\nprot = 1884',
            12,
            "brokers[0].prot",
            "unknown key 'prot' (did you mean 'port'?)",
        ),
        # A password written into the file instead of pointing at a credential or a file.
        (
            'token = { file = "token" }',
            'token = "hunter2"',
            7,
            "api.token",
            'a secret never sits in the site file: write { credential = "NAME" } (systemd) or { file = "PATH" }',
        ),
        # A missing required field points at its table.
        ('village = "Xinhe"\n', "", 1, "site.village", "Field required"),
        # A URL where a host goes, and a NUL in a topic (MQTT forbids it).
        ('host = "127.0.0.1"', 'host = "mqtt://127.0.0.1:1883"', 11, "brokers[0].host", "is not a host"),
        ('topic = "river/1/level"', 'topic = "river/1/\\u0000level"', 20, "devices[0].points[0].topic", "NUL"),
        # A number written as text, or a flag where a number goes: never guessed.
        ("above = 3.5", 'above = "3.5"', 39, "rules[0].above", "a number is needed here, not the text '3.5'"),
        ("above = 3.5", "above = true", 39, "rules[0].above", "a number is needed here, not true"),
        ('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = 1883.0', 12, "brokers[0].port", "a whole number is needed"),
        # A value out of bounds.
        ("above = 3.5", "above = 3.5\nfor_s = -1", 40, "rules[0].for_s", "greater than or equal"),
        # A cross-reference to nothing.
        (
            'broker = "village"\n\n  [[devices.points]]\n  name = "level"\n  topic = "river/2/level"',
            'broker = "town"\n\n  [[devices.points]]\n  name = "level"\n  topic = "river/2/level"',
            25,
            "devices[1].broker",
            "not defined",
        ),
        # An invalid topic filter.
        ('topic = "river/1/level"', 'topic = "river/#/level"', 20, "devices[0].points[0].topic", "'#'"),
        # Mutual TLS needs the key with the certificate.
        (
            'host = "127.0.0.1"',
            'host = "127.0.0.1"\ntls = { client_cert = "box.pem" }',
            12,
            "brokers[0].tls",
            "give both 'client_cert' and 'client_key'",
        ),
        # TLS settings on a plain-HTTP webhook would be silently unused.
        (
            'token = { file = "token" }',
            'token = { file = "token" }\n[upstream.webhook]\nurl = "http://10.1.1.1/in"\ntls = {}',
            8,
            "upstream.webhook",
            "not https://",
        ),
    ],
)
def test_error_names_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, field: str, words: str) -> None:
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert len(found) == 1, found
    path, lineno, rest = found[0].split(":", 2)
    assert path == str(tmp_path / "site.toml")
    assert int(lineno) == line, found[0]
    assert rest.strip().startswith(field + ":"), found[0]
    assert words in rest


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace("above = 3.5", 'above = "high"').replace('host = "127.0.0.1"', "host = 1")
    found = problems(tmp_path, bad)
    assert {f.split(": ", 2)[1] for f in found} == {"brokers[0].host", "rules[0].above"}


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('id = "high"', 'id = "high'))
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'site.toml'}:37: TOML syntax")


def test_secrets_come_from_files_or_credentials_and_are_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(GOOD)
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert "api.token" in err and "secret file missing" in err and f"{site}:7:" in err

    (tmp_path / "token").write_text("s3cret-value\n")
    assert main(["config", "check", str(site)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and "s3cret-value" not in out.out + out.err
    assert load(site).config.api.token.read(tmp_path).get_secret_value() == "s3cret-value"

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api_token").write_text("from-systemd")
    site.write_text(GOOD.replace('token = { file = "token" }', 'token = { credential = "api_token" }'))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load(site).config.api.token.read(tmp_path).get_secret_value() == "from-systemd"
    # A secret's repr never shows its value.
    assert "from-systemd" not in repr(load(site).config.api.token.read(tmp_path))


def test_a_credential_missing_under_systemd_or_an_empty_secret_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(GOOD.replace('token = { file = "token" }', 'token = { credential = "api_token" }'))
    # By hand, outside the service, there is nowhere to look: a note, not a failure.
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert main(["config", "check", str(site)]) == 0
    assert "not checked here" in capsys.readouterr().out
    # Under the unit's ExecStartPre the credential directory exists: a missing one is the
    # service failing a moment later, so the check fails now and names the line to add.
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site}:7: api.token: credential 'api_token' was not handed to the service" in err
    assert "LoadCredential=api_token:/etc/edge-gateway/credentials/api_token" in err
    (creds / "api_token").write_text("\n")
    assert main(["config", "check", str(site)]) == 2
    assert f"{site}:7: api.token: credential 'api_token' is empty" in capsys.readouterr().err


def test_a_rule_on_a_point_no_device_has_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('point = "level"', 'point = "levle"'))
    assert found == [
        f"{tmp_path / 'site.toml'}:38: rules[0].point: no point 'levle' on the devices this rule covers; "
        "their points: level, temp"
    ]
    # Patterns are fine as long as something matches.
    (tmp_path / "site.toml").write_text(GOOD.replace('point = "level"', 'point = "te*"'))
    rule = load(tmp_path / "site.toml").config.rules[0]
    assert getattr(rule, "point", None) == "te*"


def test_files_saved_by_windows_editors(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # Notepad's UTF-8 byte-order mark
    assert [d.id for d in load(site).config.devices] == ["river-1", "river-2"]
    site.write_bytes(GOOD.replace('village = "Xinhe"', 'village = "新河"').encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load(site)
    assert info.value.problems == [f"{site}:4: not UTF-8 (saved as GBK or ANSI?): save the file as UTF-8"]


def test_missing_tls_files_fail_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("t")
    site = tmp_path / "site.toml"
    site.write_text(GOOD.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\ntls = { ca_file = "county-ca.pem" }'))
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site}:12: brokers[0].tls.ca_file: file {tmp_path / 'county-ca.pem'} not found" in err
    (tmp_path / "county-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert main(["config", "check", str(site)]) == 0


def test_check_command_exits_2_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(GOOD.replace("above = 3.5", "below = 1\nabove = 3.5"))
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{site}:35: rules[0]: give exactly one of 'above' or 'below'"]


def test_schema_command_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(GatewayConfig.model_json_schema()))
    assert {"site", "api", "devices", "rules"} <= set(schema["properties"])


def test_every_field_has_a_description() -> None:
    schema = GatewayConfig.model_json_schema()
    missing = []
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{field}")
    assert not missing, missing
