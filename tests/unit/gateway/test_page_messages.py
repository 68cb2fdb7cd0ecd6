"""The page speaks English and Chinese: every message in both catalogs, every key the page uses in them."""

from __future__ import annotations

import json
import re
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
    used |= {f"role.{r}" for r in ("technician", "platform", "viewer")}  # t(`role.${role}`)
    used |= {f"live.{m}" for m in ("relay", "encode", "jpeg", "connecting")}
    used |= {f"incidents.{v}" for v in ("ack", "close", "ack_by", "close_by", "ack_failed", "close_failed")}
    assert used, "no t() calls found: the pattern above is stale"
    assert used <= set(en), f"missing from messages.json: {sorted(used - set(en))}"
