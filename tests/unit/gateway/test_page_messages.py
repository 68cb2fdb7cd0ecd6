"""The page speaks English and Chinese: every message in both catalogs, every key the page uses in
them, and no English left in the page's code outside the catalogs."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

STATIC = Path(__file__).resolve().parents[3] / "gateway" / "static"


def test_every_message_has_both_languages() -> None:
    catalogs = json.loads((STATIC / "messages.json").read_text(encoding="utf-8"))
    assert set(catalogs) == {"en", "zh-CN"}
    en, zh = catalogs["en"], catalogs["zh-CN"]
    assert set(en) == set(zh), f"only in en: {set(en) - set(zh)}; only in zh-CN: {set(zh) - set(en)}"
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        # the same placeholders on both sides, or a sentence loses its number
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", zh[key])), key
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(zh.values()))


def test_every_key_the_page_uses_is_in_the_catalog() -> None:
    en = json.loads((STATIC / "messages.json").read_text(encoding="utf-8"))["en"]
    used: set[str] = set()
    for name in ("app.js", "live.js", "i18n.js", "incidents.js"):
        used |= set(re.findall(r"\bt\(\"([\w.]+)\"", (STATIC / name).read_text(encoding="utf-8")))
    used |= set(re.findall(r'data-i18n="([\w.]+)"', (STATIC / "index.html").read_text(encoding="utf-8")))
    # keys chosen by a condition, t(cond ? "a.b" : "a.c"): every quoted string shaped as a key
    namespaces = "|".join(sorted({k.split(".")[0] for k in en}))
    for name in ("app.js", "live.js", "incidents.js"):
        used |= set(
            re.findall(rf'(?<!tCode\()"((?:{namespaces})\.[\w.]+)"', (STATIC / name).read_text(encoding="utf-8"))
        )
    used |= {f"role.{r}" for r in ("technician", "platform", "viewer")}  # t(`role.${role}`)
    # tCode("state", ...): the states the box reports (drivers.base.DriverState, drivers.camera.CameraState)
    used |= {f"state.{s}" for s in ("starting", "connected", "backoff", "failed", "stopped")}
    used |= {f"state.{s}" for s in ("connecting", "streaming", "offline")}
    used |= {"camera.profile.day", "camera.profile.night"}  # tCode("camera.profile", ...)
    # tCode("live.refused", problem.code, ...): each reason the box gives for refusing an offer
    live_view = (STATIC.parent / "live_view.py").read_text(encoding="utf-8")
    refusals = re.findall(r"raise LiveViewRefused\((.*?)\)(?: from exc)?\n", live_view, re.DOTALL)
    assert len(refusals) >= 8, "the refusals' pattern above is stale"
    used |= {"live.refused." + re.findall(r'"(\w+)"', args)[-1] for args in refusals}
    used |= {f"live.{m}" for m in ("relay", "encode", "jpeg", "connecting")}
    used |= {f"incidents.{v}" for v in ("ack", "close", "ack_by", "close_by", "ack_failed", "close_failed")}
    assert used, "no t() calls found: the pattern above is stale"
    assert used <= set(en), f"missing from messages.json: {sorted(used - set(en))}"


# Literals of the page's code that hold words but are not said to anyone.
_NOT_PROSE = {"use strict", "#links tbody", "#incidents tbody", "#gb tbody", "view-mode hint"}


def _literals(js: str) -> list[str]:
    """The page code's string literals (template literals without their ${...}), comments left out."""
    js = re.sub(r"^\s*//.*$|\s//\s.*$", "", js, flags=re.MULTILINE)
    found = re.finditer(r'"((?:[^"\\\n]|\\.)*)"|`((?:[^`\\]|\\.)*)`', js)
    return [m[1] if m[1] is not None else re.sub(r"\$\{[^}]*\}", " ", m[2]) for m in found]


def test_no_english_sentence_is_left_in_the_page_code() -> None:
    prose = [
        (name, lit)
        for name in ("app.js", "live.js", "i18n.js", "incidents.js")
        for lit in _literals((STATIC / name).read_text(encoding="utf-8"))
        if re.search(r"[A-Za-z]{2,} +[A-Za-z]{2,}", lit) and lit not in _NOT_PROSE
    ]
    assert prose == [], f"words for people belong in messages.json: {prose}"
    # a single word shown as it is: a text, alt or title set from a bare literal
    for name in ("app.js", "live.js", "i18n.js", "incidents.js"):
        code = (STATIC / name).read_text(encoding="utf-8")
        shown = re.findall(r'(?:textContent|alt|title) = (["`][^"`]*["`]);', code)
        bare = [lit for lit in shown if re.search(r"[A-Za-z]{2,}", re.sub(r"\$\{[^}]*\}", "", lit))]
        assert bare == [], (name, bare)


class _Text(HTMLParser):
    """Words of index.html that no data-i18n covers."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, bool]] = []
        self.uncovered: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "link", "input", "img", "br"):
            self.open.append((tag, any(k == "data-i18n" for k, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if not self.open or self.open[-1][0] in ("script", "style") or self.open[-1][1]:
            return
        if re.search(r"[A-Za-z]{2,}", data):
            self.uncovered.append(data.strip())


def test_every_word_of_the_html_is_in_the_catalog() -> None:
    parser = _Text()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert parser.uncovered == [], parser.uncovered
