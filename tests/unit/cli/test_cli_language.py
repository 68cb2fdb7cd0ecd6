"""`doctor` and `discover` speak Chinese or English by the locale: every message in both
catalogs, every key the code says in them, and the real command under a zh_CN locale."""

from __future__ import annotations

import os
import re
import socket
import string
import subprocess
import sys
from pathlib import Path

import pytest

from edge_core.i18n import catalog, language
from gateway.cli import main
from tests.sites import one_terminal_site

ROOT = Path(__file__).resolve().parents[3]
SPEAKERS = ("gateway/doctor.py", "drivers/discovery.py", "gateway/cli.py")


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_every_message_has_both_languages() -> None:
    messages = catalog()
    assert set(messages) == {"en", "zh-CN"}
    en, zh = messages["en"], messages["zh-CN"]
    assert set(en) == set(zh), f"only in en: {set(en) - set(zh)}; only in zh-CN: {set(zh) - set(en)}"
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        # the same placeholders on both sides, or a line loses its path or its number
        assert _fields(en[key]) == _fields(zh[key]), key
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh[key]) or zh[key] == en[key], key


def test_every_key_the_commands_say_is_in_the_catalog() -> None:
    en = catalog()["en"]
    namespaces = "|".join(sorted({k.split(".")[0] for k in en}))
    used: set[str] = set()
    for name in SPEAKERS:
        code = (ROOT / name).read_text(encoding="utf-8")
        used |= set(re.findall(rf'"((?:{namespaces})\.[\w.]+)"', code))
    used |= {f"discover.col.{c}" for c in ("address", "manufacturer", "model", "serial", "scopes")}
    assert len(used) > 50, "few keys found: the pattern above is stale"
    assert used <= set(en), f"missing from edge_core/messages.json: {sorted(used - set(en))}"
    assert set(en) <= used, f"never said: {sorted(set(en) - used)}"


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "C"}, "en"),
        ({"LANG": "C.UTF-8", "LC_MESSAGES": "zh_CN.GB18030"}, "zh-CN"),
        ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_TW.UTF-8"}, "zh-CN"),
        ({"LANG": "POSIX"}, "en"),
    ],
)
def test_the_locale_precedence_is_lc_all_then_lc_messages_then_lang(env: dict[str, str], lang: str) -> None:
    assert language(env) == lang


def _start(args: list[str], locale: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``edge-gateway ARGS`` in a process whose only locale variable is LANG=``locale``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LANG=locale, **(extra or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
    )


def test_doctor_and_discover_speak_chinese_under_a_zh_cn_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:  # bound, not listening: the broker and the API are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        site = tmp_path / "site.toml"
        site.write_text(
            one_terminal_site(
                tmp_path / "state", api=f'port = {port}\ntoken = {{ file = "token" }}', broker=f"port = {port}"
            )
        )
        args = ["doctor", "--config", str(site), "--unit", str(tmp_path / "no-unit")]
        # both at once: each spends a second or two importing
        doctor = _start(args, "zh_CN.UTF-8")
        discover = _start(
            ["discover", "--timeout", "0.3"], "zh_CN.UTF-8", {"EDGE_GATEWAY_DISCOVERY_TARGET": f"127.0.0.1:{port}"}
        )
        doctor_out, doctor_err = doctor.communicate(timeout=60)
        _discover_out, discover_err = discover.communicate(timeout=60)
        for name in ("LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("LANG", "C.UTF-8")
        assert main(args) == 1
        english = capsys.readouterr().out
    assert doctor.returncode == 1, doctor_err
    lines = doctor_out.splitlines()
    assert any(line.startswith("FAIL  MQTT 代理 village 不可达：127.0.0.1") for line in lines), doctor_out
    assert "代理是否在运行？" in doctor_out and "2 个问题" in doctor_out
    # the status column scripts read stays as it is; the same checks fail in either language
    status = [line[:4] for line in lines if line[:4] in ("OK  ", "WARN", "FAIL")]
    assert status == [line[:4] for line in english.splitlines() if line[:4] in ("OK  ", "WARN", "FAIL")]
    assert "FAIL  MQTT broker village not reachable at 127.0.0.1" in english
    assert discover.returncode == 1
    assert "秒内没有 ONVIF 摄像机应答" in discover_err, discover_err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "站点 TOML 文件" in capsys.readouterr().out
