"""Zones from the page: geometry checks, and the site file edited without touching anything else."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_config import load
from gateway.zones import ZoneError, ZoneSpec, parse_zones, rewrite_zones, save_zones

SQUARE = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5))
NEW = [ZoneSpec("yard", "restricted", SQUARE, 0.01)]

HEAD = """# the site's own comment
state_dir = "state"

[site]
box_id = "box-1"   # kept
township = "t"
village = "v"

[api]
token = { file = "api_token" }
"""

CAMERA = """
[[devices]]
kind = "onvif"
id = "gate"
host = "127.0.0.1"
"""

OTHER = """
# the pump camera, unchanged
[[devices]]
kind = "onvif"
id = "pump"
host = "127.0.0.2"
  [[devices.vision.zones]]
  name = "door"
  points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
"""


def _zones(text: str, cam: str) -> list[dict[str, object]]:
    dev = next(d for d in tomllib.loads(text)["devices"] if d["id"] == cam)
    return list(dev.get("vision", {}).get("zones", []))


@pytest.mark.parametrize(
    "layout",
    [
        "",  # no zones yet
        '\n[[devices.vision.zones]]\nname = "old" # an old zone\npoints = [[0.2, 0.2], [0.3, 0.2], [0.3, 0.3]]\n'
        '\n[[devices.vision.zones]]\nname = "older"\npoints = [\n  [0.2, 0.2],\n  [0.3, 0.2],\n  [0.3, 0.3],\n]\n',
        '\n[devices.vision]\nstabilise = "off" # shaky mast\nzones = [\n  { name = "old", points = [[0.2, 0.2], '
        "[0.3, 0.2], [0.3, 0.3]] },\n]\n",
        '\nvision = { stabilise = "on", zones = [{ name = "old", points = [[0.2, 0.2], [0.3, 0.2], [0.3, 0.3]] }] }\n',
    ],
    ids=["none", "tables", "key", "inline"],
)
def test_only_the_cameras_zones_change(layout: str) -> None:
    text = HEAD + CAMERA + layout + OTHER
    out = rewrite_zones(text, "gate", NEW)
    assert _zones(out, "gate") == [z.as_dict() for z in NEW]
    assert _zones(out, "pump") == _zones(text, "pump")
    # comments and the other camera's text are kept as they were
    assert out.startswith(HEAD) and out.endswith(OTHER)
    assert "# the pump camera, unchanged" in out
    if "shaky mast" in layout:
        assert "# shaky mast" in out
    before, after = tomllib.loads(text), tomllib.loads(out)
    for d in (before, after):
        d["devices"][0].get("vision", {}).pop("zones", None)
        if d["devices"][0].get("vision") == {}:
            d["devices"][0].pop("vision")
    assert before == after
    # and removing every zone again leaves a valid file
    assert _zones(rewrite_zones(out, "gate", []), "gate") == []


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ([{"name": "x", "points": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}], "edges 1 and 3 cross"),
        ([{"name": "x", "points": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}], "point 2 is outside the picture"),
        (
            [{"name": "a", "points": [list(p) for p in SQUARE]}, {"name": "A", "points": [list(p) for p in SQUARE]}],
            "another zone has this name",
        ),
        ([{"name": "", "points": [list(p) for p in SQUARE]}], "give it a name"),
        ([{"name": "x", "points": [[0.1, 0.1], [0.2, 0.2]]}], "at least 3 points"),
        ([{"name": "x", "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}], "encloses no area"),
    ],
)
def test_bad_zones_are_named_with_the_fix(zones: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ZoneError) as err:
        parse_zones({"zones": zones})
    assert any(message in p for p in err.value.problems), err.value.problems


def test_save_keeps_a_backup_and_refuses_without_writing(tmp_path: Path) -> None:
    (tmp_path / "api_token").write_text("t\n")
    site = tmp_path / "site.toml"
    site.write_text(HEAD + CAMERA + OTHER)
    loaded = load(site)
    backup = save_zones(loaded, "gate", NEW)
    assert backup.read_text() == HEAD + CAMERA + OTHER
    assert _zones(site.read_text(), "gate") == [z.as_dict() for z in NEW]
    # a value the schema refuses (the same check as `config check`): nothing written
    written = site.read_text()
    with pytest.raises(ZoneError) as err:
        save_zones(load(site), "gate", [ZoneSpec("y", "motion", SQUARE, 2.0)])
    assert site.read_text() == written
    assert any("min_fraction" in p for p in err.value.problems), err.value.problems
