"""Loading a site file, and errors that name file, line and field."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edge_config._base import SecretRef
from edge_config.model import GatewayConfig
from edge_config.nats import subject_token
from edge_config.tls import TlsSettings
from edge_core.errors import ConfigError

__all__ = ["LoadedConfig", "check_secrets", "load", "load_text", "models_of"]

Loc = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)


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
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        # Windows Notepad starts UTF-8 files with a byte-order mark, which TOML does not allow.
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}:{line}: not UTF-8 (saved as GBK or ANSI?): save the file as UTF-8",
            [f"{p}:{line}: not UTF-8 (saved as GBK or ANSI?): save the file as UTF-8"],
        ) from None
    return load_text(text, p)


def load_text(text: str, path: Path) -> LoadedConfig:
    """Validate TOML ``text`` as if read from ``path``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = m.group(1) if m else "?"
        raise ConfigError(f"{path}:{line}: TOML syntax: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}:{_deep_line(text)}: arrays or tables nested too deeply") from None
    except ValueError as exc:  # a number past Python's 4,300-digit limit for int()
        raise ConfigError(f"{path}:{_long_number_line(text)}: {exc}") from None
    lines = _locate_keys(text)
    nul = list(_nul_strings(data, ()))
    if nul:
        problems = [f"{path}:{_nearest_line(lines, loc)}: {_dotted(loc)}: holds a NUL character" for loc in nul]
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = _strip_tags(data, tuple(err["loc"]))
            problems.append(f"{path}:{_nearest_line(lines, loc)}: {_dotted(loc)}: {_message(err, loc)}")
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from None
    problems = [f"{path}:{_nearest_line(lines, loc)}: {_dotted(loc)}: {msg}" for loc, msg in _references(cfg)]
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return LoadedConfig(cfg, path, lines)


def check_secrets(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """Try to read every secret and TLS file the config names. Returns (problems, notes).

    Secret values are never shown. A credential is only a note when there is no
    ``$CREDENTIALS_DIRECTORY`` to look in (a check by hand, outside the service); under systemd
    (the unit's ExecStartPre) a missing one is a problem, named with the line that loads it.
    """
    problems: list[str] = []
    notes: list[str] = []
    for loc, ref in models_of(loaded.config, (), SecretRef):
        where = f"{loaded.path}:{loaded.line_of(loc)}: {_dotted(loc)}"
        try:
            value = ref.read(loaded.base_dir).get_secret_value()
        except FileNotFoundError as exc:
            if ref.credential is None:
                problems.append(f"{where}: secret file missing: {exc.filename or ref.file}")
            elif os.environ.get("CREDENTIALS_DIRECTORY"):
                problems.append(
                    f"{where}: credential {ref.credential!r} was not handed to the service: add "
                    f"LoadCredential={ref.credential}:/etc/edge-gateway/credentials/{ref.credential} "
                    "(systemctl edit edge-gateway) and create that file"
                )
            else:
                notes.append(f"{where}: not checked here: {exc}")
            continue
        except OSError as exc:
            problems.append(f"{where}: cannot read secret: {exc.strerror}")
            continue
        if not value.strip():
            what = f"credential {ref.credential!r}" if ref.credential else f"secret file {ref.path(loaded.base_dir)}"
            problems.append(f"{where}: {what} is empty")
    for loc, tls in models_of(loaded.config, (), TlsSettings):
        for name in ("ca_file", "client_cert"):
            file = getattr(tls, name)
            if file is not None and not (loaded.base_dir / file).is_file():
                line = loaded.line_of((*loc, name))
                problems.append(
                    f"{loaded.path}:{line}: {_dotted((*loc, name))}: file {loaded.base_dir / file} not found"
                )
    return problems, notes


def models_of(model: BaseModel, loc: Loc, kind: type[_M]) -> Iterator[tuple[Loc, _M]]:
    """Every sub-model of type ``kind`` with its location, depth first."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for idx, item in items:
            here = (*loc, name) if idx is None else (*loc, name, idx)
            if isinstance(item, kind):
                yield here, item
            elif isinstance(item, BaseModel):
                yield from models_of(item, here, kind)


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
    nats = cfg.upstream.nats
    if nats is not None and nats.township is None and subject_token(cfg.site.township) is None:
        # A township written in hanzi cannot stand in a subject every ACL file can name.
        out.append(
            (
                ("upstream", "nats", "township"),
                f"[site] township {cfg.site.township!r} is not a subject token: set upstream.nats.township "
                "(ASCII letters, digits, '_', '-'), such as its pinyin",
            )
        )
    out += _gb28181_references(cfg)
    for i, rule in enumerate(cfg.rules):
        covered = [d for d in cfg.devices if any(fnmatch.fnmatchcase(d.id, pat) for pat in rule.devices)]
        if not covered:
            out.append((("rules", i, "devices"), f"matches no device (patterns {rule.devices})"))
            continue
        pattern = getattr(rule, "point", None)
        # Only devices that declare their points can be checked (a camera's are its zones).
        points = {p.name for d in covered for p in getattr(d, "points", ())}
        if isinstance(pattern, str) and points and not fnmatch.filter(points, pattern):
            # A misspelt point would leave the rule silent for ever: say so now.
            out.append(
                (
                    ("rules", i, "point"),
                    f"no point {pattern!r} on the devices this rule covers; their points: {', '.join(sorted(points))}",
                )
            )
    return out


def _gb28181_references(cfg: GatewayConfig) -> list[tuple[Loc, str]]:
    """GB/T 28181 ids name one thing each: a camera's channel id is neither another camera's nor
    the box's or the platform's, and each channel keeps its own delivery cursor by its id."""
    out: list[tuple[Loc, str]] = []
    owner: dict[str, str] = {}
    for i, dev in enumerate(cfg.devices):
        nid = getattr(dev, "national_id", None)
        if isinstance(nid, str):
            if nid in owner:
                out.append((("devices", i, "national_id"), f"national_id {nid} is also {owner[nid]!r}'s"))
            owner.setdefault(nid, dev.id)
    names: set[str] = set()
    for i, gb in enumerate(cfg.upstream.gb28181):
        if gb.id in names:
            out.append((("upstream", "gb28181", i, "id"), f"id {gb.id!r} is used twice in [[upstream.gb28181]]"))
        names.add(gb.id)
        for key in ("device_id", "platform_id"):
            nid = getattr(gb, key)
            if nid in owner:
                out.append((("upstream", "gb28181", i, key), f"{key} {nid} is camera {owner[nid]!r}'s national_id"))
    return out


@functools.cache
def _known_keys() -> tuple[str, ...]:
    """Every key the site file may use anywhere, for 'did you mean' hints."""
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(GatewayConfig.model_json_schema())
    return tuple(sorted(keys))


def _message(err: Any, loc: Loc) -> str:
    """pydantic's message, reworded where a technician would not know what it means."""
    kind, msg = err["type"], str(err["msg"])
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        near = difflib.get_close_matches(loc[-1], _known_keys(), n=1, cutoff=0.75)
        return f"unknown key {loc[-1]!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
    if kind in ("float_type", "int_type"):
        given = err.get("input")
        whole = "a whole number" if kind == "int_type" else "a number"
        if isinstance(given, bool):
            return f"{whole} is needed here, not {str(given).lower()}"
        if isinstance(given, str):
            return f"{whole} is needed here, not the text {given[:40]!r}: write it without quotes"
        if isinstance(given, float):
            return f"{whole} is needed here, not {given!r}"
    if kind in ("model_type", "dict_type") and "SecretRef" in msg:
        return 'a secret never sits in the site file: write { credential = "NAME" } (systemd) or { file = "PATH" }'
    return msg.removeprefix("Value error, ")


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


def _nul_strings(node: Any, loc: Loc) -> Iterator[Loc]:
    """Where a string holds a NUL (TOML allows \\u0000): no path, name or URL may."""
    if isinstance(node, str):
        if "\0" in node:
            yield loc
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _nul_strings(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nul_strings(v, (*loc, i))


def _deep_line(text: str) -> int:
    """The line where brackets first nest past any sane depth (for a RecursionError)."""
    depth = 0
    for n, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            if depth > 100:
                return n
    return 1


def _long_number_line(text: str) -> int:
    m = re.search(r"[0-9_]{1000}", text)
    return 1 if m is None else text.count("\n", 0, m.start()) + 1


def _nearest_line(lines: dict[Loc, int], loc: Loc) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+)\s*=")


def _header(raw: str) -> tuple[str, str] | None:
    """('[' or '[[', name) of a table header line, else None.

    By hand, in one pass: the regex it replaces backtracked cubically on a '[' followed by
    thousands of spaces (seconds to minutes with the event loop blocked, on SIGHUP).
    """
    s = raw.strip()
    if not s.startswith("["):
        return None
    opener = "[[" if s.startswith("[[") else "["
    body = s[len(opener) :]
    end = body.find("]")
    name = body[:end].strip() if end >= 0 else ""
    if not name:
        return None
    rest = body[end + 1 :].removeprefix("]").strip()
    if rest and not rest.startswith("#"):
        return None
    return opener, name


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
        h = _header(raw)
        if h and not _KEY.match(raw):
            names = _split_key(h[1])
            # Resolve each prefix against the arrays of tables seen so far (their latest element).
            path: list[str | int] = []
            for i, name in enumerate(names):
                path.append(name)
                is_last = i == len(names) - 1
                if is_last and h[0] == "[[":
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
