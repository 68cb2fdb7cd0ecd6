"""Loading a site file, and errors that name file, line and field."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_config._base import SecretRef
from edge_config.model import GatewayConfig
from gateway.errors import ConfigError

__all__ = ["LoadedConfig", "check_secrets", "load", "load_text"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from (relative secret paths resolve against ``base_dir``)."""

    config: GatewayConfig
    path: Path
    lines: dict[Loc, int]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def line_of(self, loc: Loc) -> int:
        return _nearest_line(self.lines, loc)


def load(path: str | Path) -> LoadedConfig:
    """Read and validate a site file; raise :class:`ConfigError` listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    return load_text(text, p)


def load_text(text: str, path: Path) -> LoadedConfig:
    """Validate TOML ``text`` as if read from ``path``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = m.group(1) if m else "?"
        raise ConfigError(f"{path}:{line}: TOML syntax: {exc}") from None
    lines = _locate_keys(text)
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = _strip_tags(data, tuple(err["loc"]))
            problems.append(f"{path}:{_nearest_line(lines, loc)}: {_dotted(loc)}: {err['msg']}")
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from None
    problems = [f"{path}:{_nearest_line(lines, loc)}: {_dotted(loc)}: {msg}" for loc, msg in _references(cfg)]
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return LoadedConfig(cfg, path, lines)


def check_secrets(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """Try to read every secret the config names. Returns (problems, notes); values are never shown."""
    problems: list[str] = []
    notes: list[str] = []
    for loc, ref in _secret_refs(loaded.config, ()):
        where = f"{loaded.path}:{loaded.line_of(loc)}: {_dotted(loc)}"
        try:
            ref.read(loaded.base_dir)
        except FileNotFoundError as exc:
            if ref.credential is not None:
                notes.append(f"{where}: not checked here: {exc}")
            else:
                problems.append(f"{where}: secret file missing: {exc.filename or ref.file}")
        except OSError as exc:
            problems.append(f"{where}: cannot read secret: {exc.strerror}")
    return problems, notes


def _secret_refs(model: BaseModel, loc: Loc) -> Iterator[tuple[Loc, SecretRef]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for idx, item in items:
            here = (*loc, name) if idx is None else (*loc, name, idx)
            if isinstance(item, SecretRef):
                yield here, item
            elif isinstance(item, BaseModel):
                yield from _secret_refs(item, here)


def _references(cfg: GatewayConfig) -> list[tuple[Loc, str]]:
    """Cross-references between sections; checked after the sections themselves are valid."""
    out: list[tuple[Loc, str]] = []
    for what, ids in (
        ("brokers", [b.id for b in cfg.brokers]),
        ("devices", [d.id for d in cfg.devices]),
        ("rules", [r.id for r in cfg.rules]),
    ):
        seen: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                out.append(((what, i, "id"), f"id {ident!r} is used twice in [[{what}]]"))
            seen.add(ident)
    brokers = {b.id for b in cfg.brokers}
    for i, dev in enumerate(cfg.devices):
        broker = getattr(dev, "broker", None)
        if isinstance(broker, str) and broker not in brokers:
            out.append((("devices", i, "broker"), f"broker {broker!r} is not defined in [[brokers]]"))
    if cfg.upstream.mqtt is not None and cfg.upstream.mqtt.broker not in brokers:
        out.append(
            (("upstream", "mqtt", "broker"), f"broker {cfg.upstream.mqtt.broker!r} is not defined in [[brokers]]")
        )
    device_ids = {d.id for d in cfg.devices}
    for i, rule in enumerate(cfg.rules):
        if not any(fnmatch.filter(device_ids, pat) for pat in rule.devices):
            out.append((("rules", i, "devices"), f"matches no device (patterns {rule.devices})"))
    return out


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _strip_tags(data: Any, loc: Loc) -> Loc:
    """Drop the discriminator tags pydantic puts in error locations ('devices', 0, 'mqtt', ...)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and node.get("kind") == part:
            continue
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)


def _nearest_line(lines: dict[Loc, int], loc: Loc) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+)\s*=")


def _split_key(key: str) -> list[str]:
    return [k.strip().strip("\"'") for k in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', key)]


def _locate_keys(text: str) -> dict[Loc, int]:
    """Map each key's path (with array-of-table indices) to its 1-based line.

    tomllib keeps no positions, so this reads the text again, tracking table headers. It is only
    used to point at lines in error messages: where it cannot tell, the nearest enclosing table's
    line is used.
    """
    lines: dict[Loc, int] = {}
    counts: dict[Loc, int] = {}
    table: Loc = ()
    in_multiline = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0] if '"' not in raw and "'" not in raw else raw
        if in_multiline:
            in_multiline += line.count("[") - line.count("]")
            continue
        h = _HEADER.match(raw)
        if h and not _KEY.match(raw):
            names = _split_key(h.group(2))
            # Resolve each prefix against the arrays of tables seen so far (their latest element).
            path: list[str | int] = []
            for i, name in enumerate(names):
                path.append(name)
                is_last = i == len(names) - 1
                if is_last and h.group(1) == "[[":
                    key = tuple(path)
                    counts[key] = counts.get(key, -1) + 1
                    # A new element of a parent array resets its children's counts.
                    for k in [k for k in counts if len(k) > len(key) and k[: len(key)] == key]:
                        del counts[k]
                    path.append(counts[key])
                elif tuple(path) in counts:
                    path.append(counts[tuple(path)])
            table = tuple(path)
            lines.setdefault(table, n)
            if table and isinstance(table[-1], int):
                lines.setdefault(table[:-1], n)
            continue
        km = _KEY.match(line)
        if km:
            keypath = (*table, *_split_key(km.group(1)))
            lines.setdefault(keypath, n)
            rest = line[km.end() :]
            for inner in _INLINE_KEY.finditer(rest):
                lines.setdefault((*keypath, inner.group(1)), n)
            depth = rest.count("[") - rest.count("]")
            if depth > 0:
                in_multiline = depth
    return lines
