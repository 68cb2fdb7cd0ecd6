"""Hostile and broken site files: a ConfigError naming a line, fast, never anything else.

The same loader runs in ExecStartPre, `run`, `doctor`, `config check` and on SIGHUP in the running
daemon, so a crash or a stall here is a crash or a stall of the box.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_config import check_secrets, load, load_text
from edge_core.errors import ConfigError
from gateway.cli import main
from tests.unit.edge_config.test_config import GOOD

PATH = Path("/etc/edge-gateway/site.toml")
_LINE = re.compile(r"^/etc/edge-gateway/site\.toml:\d+: ")


def refused(text: str, within_s: float = 1.0) -> list[str]:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_text(text, PATH)
    took = time.perf_counter() - t0
    assert took < within_s, f"{took:.1f} s to refuse it"
    for line in info.value.problems:
        assert _LINE.match(line), line
    return info.value.problems


@pytest.mark.parametrize("spaces", [4000, 8000])
def test_a_bracket_and_thousands_of_spaces_in_a_multiline_string_is_linear(spaces: int) -> None:
    # The header regex backtracked cubically on this line: 31 s at 4,000 spaces, 251 s at 8,000.
    text = GOOD + 'notes = """\n[' + " " * spaces + '\n"""\n'
    (msg,) = refused(text)
    assert "notes" in msg and "unknown key" in msg


def test_deep_nesting_is_a_config_error_with_a_line() -> None:
    (msg,) = refused(GOOD + "\nx = " + "[" * 50_000 + "\n")
    assert msg.startswith(f"{PATH}:{GOOD.count(chr(10)) + 2}: ") and "nested too deeply" in msg


def test_a_number_of_thousands_of_digits_is_a_config_error_with_a_line() -> None:
    (msg,) = refused(GOOD.replace("above = 3.5", "above = " + "7" * 5000))
    assert msg.startswith(f"{PATH}:{GOOD.splitlines().index('above = 3.5') + 1}: ")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_nan_and_infinite_thresholds_are_refused(value: str) -> None:
    (msg,) = refused(GOOD.replace("above = 3.5", f"above = {value}"))
    assert "rules[0].above" in msg and "finite" in msg


def test_an_opcua_port_out_of_range_is_refused() -> None:
    plc = '\n[[devices]]\nkind = "opcua"\nid = "plc-1"\nendpoint = "opc.tcp://10.0.0.5:99999"\n'
    text = GOOD.replace("[[rules]]", plc + "\n[[rules]]")
    msgs = refused(text)
    assert any("endpoint" in m and "99999" in m and "65535" in m for m in msgs), msgs


def test_a_nul_in_a_path_is_refused() -> None:
    (msg,) = refused('state_dir = "/var/lib/edge\\u0000gateway"\n' + GOOD)
    assert msg == f"{PATH}:1: state_dir: holds a NUL character"


def test_secret_files_that_are_not_text_or_have_a_nul_in_their_path_are_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(GOOD)
    (tmp_path / "token").write_bytes(b"\xff\xfe\x00bad")
    loaded = load(site)
    problems, _notes = check_secrets(loaded)
    assert problems == [f"{site}:7: api.token: cannot read secret: not UTF-8 text: write the secret as plain text"]
    assert main(["config", "check", str(site)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    site.write_text(GOOD.replace('token = { file = "token" }', 'token = { file = "to\\u0000ken" }'))
    assert main(["config", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert "api.token.file: holds a NUL character" in err and "Traceback" not in err


# -- properties ----------------------------------------------------------------------------------

_GOOD_LINES = GOOD.splitlines()
_NASTY = st.sampled_from(
    ["[", "[[", "]", "{", "}", '"', "'", '"""', "=", "#", "\\", " " * 300, "\x00", "\u0000", "nan", "inf", "9" * 5000]
)


@st.composite
def mangled_sites(draw: st.DrawFn) -> str:
    lines = list(_GOOD_LINES)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines)))
        piece = draw(st.one_of(_NASTY, st.text(max_size=40), st.sampled_from(_GOOD_LINES)))
        if draw(st.booleans()) and i < len(lines):
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + piece + lines[i][j:]
        else:
            lines.insert(i, piece * draw(st.integers(1, 3)))
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_sites())
def test_any_mangled_site_file_gives_a_model_or_a_config_error_with_a_line(text: str) -> None:
    t0 = time.perf_counter()
    try:
        load_text(text, PATH)
    except ConfigError as exc:
        for line in exc.problems:
            assert _LINE.match(line) or re.match(r"^/etc/edge-gateway/site\.toml:\?: ", line), line
    assert time.perf_counter() - t0 < 2.0
