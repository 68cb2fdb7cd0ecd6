"""The command line's words in the technician's language: English or Simplified Chinese, by locale.

``say(key, **values)`` looks ``key`` up in ``messages.json`` beside this module (one object per
language, as the status page's ``gateway/static/messages.json``; a test keeps both complete) and
fills its ``{placeholders}`` with :meth:`str.format`. The language comes from the locale as
setlocale(3) reads it for messages: ``LC_ALL``, else ``LC_MESSAGES``, else ``LANG``, the first that
is set and not empty; any ``zh`` locale (``zh_CN.UTF-8``, ``zh_SG``, ``zh_TW``) reads Chinese,
everything else (``C``, ``POSIX``, ``en_US``, unset) English.

Only words for people go through here. What scripts read stays as it is in every language: the
OK / WARN / FAIL column of ``doctor``, the TOML that ``discover --config`` prints, codes and paths.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from importlib import resources

__all__ = ["LANGUAGES", "catalog", "language", "say"]

LANGUAGES = ("en", "zh-CN")


def language(environ: Mapping[str, str] | None = None) -> str:
    """``"zh-CN"`` or ``"en"``, from the locale variables of ``environ`` (default: this process's)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "zh-CN" if value.lower().startswith("zh") else "en"
    return "en"


@functools.cache
def catalog() -> dict[str, dict[str, str]]:
    """Every language's messages, key -> text."""
    text = resources.files("edge_core").joinpath("messages.json").read_text(encoding="utf-8")
    loaded: dict[str, dict[str, str]] = json.loads(text)
    return loaded


def say(key: str, /, **values: object) -> str:
    """The message ``key`` in the locale's language (English where a key is missing), filled in."""
    messages = catalog()
    text = messages[language()].get(key) or messages["en"][key]
    return text.format(**values)
