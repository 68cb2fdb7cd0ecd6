"""Zones drawn on the status page, checked and written back into the site file by hand's rules.

:func:`check_zones` refuses what a technician can draw by mistake (a polygon that crosses itself,
a point off the picture, two zones of one name) with a message that names the zone.
:func:`rewrite_zones` edits the site file's text surgically: only the camera's zones change;
every comment, blank line and key order elsewhere stays. It handles the three ways a site file
holds zones (``[[devices.vision.zones]]`` tables, a ``zones = [...]`` key under
``[devices.vision]``, or an inline ``vision = {...}`` in the device's table, as the demo writes it)
and then proves the edit: the new text must parse to exactly the old data with the new zones in
place, else nothing is written. :func:`save_zones` runs the same checks as ``config check``
(schema, then secrets), keeps a backup beside the file, and replaces the file atomically.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import tempfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera import Camera
from edge_config import LoadedConfig, check_secrets, load_text
from edge_config.camera import CameraDevice
from edge_config.model import GatewayConfig
from edge_config.vision import Zone
from edge_core.errors import ConfigError
from gateway.camera_stage import CameraVision

__all__ = [
    "ZoneError",
    "ZoneSpec",
    "apply_zones",
    "check_zones",
    "parse_zones",
    "rewrite_zones",
    "save_zones",
    "without_live",
    "zones_json",
    "zones_toml",
]

_KINDS = ("restricted", "motion", "ignore")
_MAX_ZONES = 32
_MAX_POINTS = 64
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


class ZoneError(ValueError):
    """Zones the page sent that cannot be saved; ``problems`` are the messages to show."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    name: str
    kind: str
    points: tuple[tuple[float, float], ...]
    min_fraction: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "points": [[x, y] for x, y in self.points],
            "min_fraction": self.min_fraction,
        }


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def parse_zones(body: object) -> list[ZoneSpec]:
    """The page's JSON (``{"zones": [{name, kind, points, min_fraction}]}``) as zones, or
    :class:`ZoneError` naming every problem (shape and geometry)."""
    if not isinstance(body, dict) or not isinstance(body.get("zones"), list):
        raise ZoneError(['the body must be {"zones": [...]}'])
    raw = body["zones"]
    if len(raw) > _MAX_ZONES:
        raise ZoneError([f"at most {_MAX_ZONES} zones per camera, got {len(raw)}"])
    problems: list[str] = []
    zones: list[ZoneSpec] = []
    for n, z in enumerate(raw, start=1):
        if not isinstance(z, dict):
            problems.append(f"zone {n}: not an object")
            continue
        name = z.get("name")
        label = f"zone {name!r}" if isinstance(name, str) and name.strip() else f"zone {n}"
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{label}: give it a name")
            name = ""
        elif len(name.strip()) > 64:
            problems.append(f"{label}: the name is longer than 64 characters")
        kind = z.get("kind", "motion")
        if kind not in _KINDS:
            problems.append(f"{label}: kind must be one of {', '.join(_KINDS)}")
        frac = _number(z.get("min_fraction", 0.002))
        if frac is None or not 0.0 <= frac <= 1.0:
            problems.append(f"{label}: the minimum object size must be a fraction of the zone from 0 to 1")
            frac = 0.0
        pts = z.get("points")
        points: list[tuple[float, float]] = []
        if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 for p in pts):
            problems.append(f"{label}: points must be [[x, y], ...]")
        else:
            for p in pts:
                x, y = _number(p[0]), _number(p[1])
                if x is None or y is None:
                    problems.append(f"{label}: a point is not a pair of numbers")
                    break
                points.append((round(x, 4), round(y, 4)))
        zones.append(ZoneSpec(name.strip(), str(kind), tuple(points), round(frac, 6)))
    if problems:
        raise ZoneError(problems)
    check_zones(zones)
    return zones


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True
    return (
        (d1 == 0 and _on_segment(a, c, d))
        or (d2 == 0 and _on_segment(b, c, d))
        or (d3 == 0 and _on_segment(c, a, b))
        or (d4 == 0 and _on_segment(d, a, b))
    )


def self_crossing(points: tuple[tuple[float, float], ...]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (1-based, edge i runs from point i) that meet, or None."""
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a point
            if _segments_meet(a, b, points[j], points[(j + 1) % n]):
                return i + 1, j + 1
    return None


def check_zones(zones: list[ZoneSpec]) -> None:
    """Raise :class:`ZoneError` for geometry a camera cannot use: fewer than 3 points, points off
    the picture, a polygon that crosses itself or has no area, two zones of one name."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for z in zones:
        label = f"zone {z.name!r}"
        key = z.name.casefold()
        if key in seen:
            problems.append(f"{label}: another zone has this name; zone names must differ")
        seen[key] = 1
        if len(z.points) < 3:
            problems.append(f"{label}: needs at least 3 points, has {len(z.points)}")
            continue
        if len(z.points) > _MAX_POINTS:
            problems.append(f"{label}: at most {_MAX_POINTS} points, has {len(z.points)}")
            continue
        off = [i for i, (x, y) in enumerate(z.points, start=1) if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0)]
        if off:
            problems.append(f"{label}: point {off[0]} is outside the picture; move it inside the frame")
            continue
        crossing = self_crossing(z.points)
        if crossing is not None:
            problems.append(f"{label}: its edges {crossing[0]} and {crossing[1]} cross; redraw it without crossing")
            continue
        area = abs(sum(_cross((0.0, 0.0), a, b) for a, b in zip(z.points, z.points[1:] + z.points[:1], strict=True)))
        if area / 2 < 1e-5:
            problems.append(f"{label}: it encloses no area")
    if problems:
        raise ZoneError(problems)


# -- the site file's text -------------------------------------------------------------------------


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml(k)


def zones_toml(zones: list[ZoneSpec]) -> str:
    """The zones as ``[[devices.vision.zones]]`` tables."""
    out = []
    for z in zones:
        d = z.as_dict()
        out.append("[[devices.vision.zones]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in d.items()))
    return "\n".join(out)


def _norm(name: str) -> str:
    return ".".join(p.strip().strip("\"'") for p in name.split("."))


def _value_end(lines: list[str], start: int) -> int:
    """The line after the value of the key that starts at ``lines[start]`` (multi-line arrays)."""
    for end in range(start + 1, min(len(lines), start + 2000) + 1):
        try:
            tomllib.loads("\n".join(lines[start:end]))
        except tomllib.TOMLDecodeError:
            continue
        return end
    raise ZoneError(["the site file's zones value does not end; check the file with `edge-gateway config check`"])


def _trim(lines: list[str], start: int, end: int) -> int:
    """The end of ``lines[start:end]`` without its trailing blank and comment lines."""
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def rewrite_zones(text: str, camera_id: str, zones: list[ZoneSpec]) -> str:
    """``text`` with camera ``camera_id``'s zones replaced by ``zones`` and nothing else changed;
    :class:`ZoneError` when the file's layout cannot be edited safely."""
    data = tomllib.loads(text)
    devices = data.get("devices", [])
    index = next((i for i, d in enumerate(devices) if isinstance(d, dict) and d.get("id") == camera_id), None)
    if index is None:
        raise ZoneError([f"camera {camera_id!r} is not in the site file"])
    lines = text.split("\n")
    # The device's region: from its [[devices]] header to the next table that is not its own.
    start = end = None
    count = -1
    tables: list[tuple[int, str, bool]] = []  # (line, table name, array-of-tables) inside the region
    for n, line in enumerate(lines):
        h = _HEADER.match(line)
        if not h or _KEY.match(line):
            continue
        name, is_array = _norm(h.group(2)), h.group(1) == "[["
        if name == "devices" and is_array:
            count += 1
            if count == index:
                start = n
            elif start is not None and end is None:
                end = n
        elif start is not None and end is None and not name.startswith("devices."):
            end = n
        if start is not None and end is None:
            tables.append((n, name, is_array))
    if start is None:
        raise ZoneError([f"camera {camera_id!r}: its [[devices]] table was not found in the text"])
    end = len(lines) if end is None else end
    # Where the zones are now, in the three shapes a site file can give them.
    current = "devices"
    key_at: tuple[int, str] | None = None
    zone_blocks: list[tuple[int, int]] = []
    for n in range(start, end):
        line = lines[n]
        h = _HEADER.match(line)
        if h and not _KEY.match(line):
            current = _norm(h.group(2))
            if current == "devices.vision.zones" and h.group(1) == "[[":
                nxt = next((m for m, _name, _a in tables if m > n), end)
                zone_blocks.append((n, _trim(lines, n, nxt)))
            continue
        k = _KEY.match(line)
        if k and not line.lstrip().startswith("#"):
            full = f"{current}.{_norm(k.group(1))}"
            if full in ("devices.vision.zones", "devices.vision"):
                key_at = (n, full)
    new_lines = list(lines)
    if key_at is not None:
        n, full = key_at
        stop = _value_end(lines, n)
        indent = lines[n][: len(lines[n]) - len(lines[n].lstrip())]
        if full == "devices.vision.zones":
            body = ",\n".join(f"{indent}  {_toml(z.as_dict())}" for z in zones)
            replacement = f"{indent}zones = [\n{body}\n{indent}]" if zones else f"{indent}zones = []"
            keyname = _KEY.match(lines[n])
            assert keyname is not None
            replacement = replacement.replace("zones =", f"{keyname.group(1).strip()} =", 1)
        else:
            vision = copy.deepcopy(devices[index].get("vision", {}))
            vision["zones"] = [z.as_dict() for z in zones]
            replacement = f"{indent}vision = {_toml(vision)}"
        new_lines[n:stop] = replacement.split("\n")
    elif zone_blocks:
        first = zone_blocks[0][0]
        keep = [ln for i, ln in enumerate(lines[start:end], start) if not any(a <= i < b for a, b in zone_blocks)]
        offset = first - start - sum(b - a for a, b in zone_blocks if b <= first)
        block = zones_toml(zones).split("\n") if zones else []
        new_region = (
            keep[:offset] + block + ([""] if block and keep[offset:] and keep[offset].strip() else []) + keep[offset:]
        )
        new_lines[start:end] = new_region
    elif zones:
        # No zones yet: append the tables after the device's last key (blank lines and the comments
        # over the next table stay with that table).
        tail = _trim(lines, start, end)
        new_lines[tail:tail] = ["", *zones_toml(zones).rstrip("\n").split("\n")]
    new_text = "\n".join(new_lines)
    _prove(data, index, new_text, zones)
    return new_text


def _prove(old: dict[str, Any], index: int, new_text: str, zones: list[ZoneSpec]) -> None:
    """The new text must parse to the old data with only the zones changed."""
    try:
        new = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ZoneError([f"editing the site file's zones would break it ({exc}); nothing was written"]) from None
    want = copy.deepcopy(old)
    want["devices"][index].setdefault("vision", {})["zones"] = [z.as_dict() for z in zones]
    got = copy.deepcopy(new)
    for doc in (want, got):  # no zones, zones = [] and an empty vision table mean the same
        device = doc["devices"][index]
        vision = device.get("vision", {})
        if not vision.get("zones", True):
            vision.pop("zones")
        if "vision" in device and not vision:
            device.pop("vision")
    if got != want:
        raise ZoneError(["the site file's layout around this camera's zones is unusual; edit them by hand"])


def save_zones(loaded: LoadedConfig, camera_id: str, zones: list[ZoneSpec]) -> Path:
    """Write the zones into the site file after the checks of ``config check``; returns the backup.

    Nothing is written when a check fails (:class:`ZoneError` lists why).
    """
    path = loaded.path
    text = path.read_text(encoding="utf-8")
    new_text = rewrite_zones(text.removeprefix("\ufeff"), camera_id, zones)
    try:
        checked = load_text(new_text, path)
    except ConfigError as exc:
        raise ZoneError(exc.problems or [str(exc)]) from None
    problems, _notes = check_secrets(checked)
    if problems:
        raise ZoneError(problems)
    backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup


def without_live(cfg: GatewayConfig) -> dict[str, Any]:
    """The config less what a reload applies live: rules, and cameras' zones."""
    d = cfg.model_dump(exclude={"rules"})
    for dev in d["devices"]:
        if dev.get("kind") == "onvif":
            dev["vision"].pop("zones", None)
    return d


def _with_zones(cam: CameraDevice, zones: tuple[Zone, ...]) -> CameraDevice:
    return cam.model_copy(update={"vision": cam.vision.model_copy(update={"zones": zones})})


def apply_zones(new: GatewayConfig, cameras: Mapping[str, Camera], stages: Mapping[str, CameraVision]) -> int:
    """Give each running camera its zones from ``new`` (the rest of its settings wait for a
    restart); each stage takes them at its next frame, in its own thread. Returns how many zones."""
    zoned = 0
    for d in new.devices:
        if isinstance(d, CameraDevice) and d.id in stages:
            running = cameras[d.id].config
            if _with_zones(running, d.vision.zones) != d:
                d = _with_zones(running, d.vision.zones)  # the zones now, the rest at the restart
            stages[d.id].reconfigure(d)
            cameras[d.id].config = d
            zoned += len(d.vision.zones)
    return zoned


def zones_json(cam: CameraDevice) -> dict[str, Any]:
    zones = [z.model_dump(include={"name", "kind", "points", "min_fraction"}) for z in cam.vision.zones]
    return {"camera": cam.id, "zones": zones}
