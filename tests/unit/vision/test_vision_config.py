"""The vision settings models: strict, frozen, bounded, documented."""

from __future__ import annotations

from datetime import time

import pydantic
import pytest

from edge_config.vision import (
    EventSettings,
    MotionSettings,
    ProfileSchedule,
    TamperSettings,
    VisionProfiles,
    VisionSettings,
    Zone,
)

MODELS = (MotionSettings, EventSettings, TamperSettings, ProfileSchedule, VisionProfiles, VisionSettings, Zone)


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        MotionSettings.model_validate({"treshold_sigma": 3})


def test_settings_are_frozen() -> None:
    s = MotionSettings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.min_threshold = 3.0


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (MotionSettings, "threshold_sigma", 0.5),
        (MotionSettings, "cleanup_radius", 5),
        (MotionSettings, "analysis_width", 8),
        (EventSettings, "on_frames", 0),
        (TamperSettings, "moved_correlation", 1.5),
        (TamperSettings, "moved_tolerance", 0.5),
    ],
)
def test_out_of_bounds_values_are_rejected(model: type[pydantic.BaseModel], field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        model.model_validate({field: value})


def test_every_field_is_documented() -> None:
    for model in MODELS:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_zone_points_must_be_normalised() -> None:
    with pytest.raises(pydantic.ValidationError, match="fractions of the frame"):
        Zone(name="gate", points=((0, 0), (640, 0), (640, 480)))
    with pytest.raises(pydantic.ValidationError, match="at least 3"):
        Zone(name="gate", points=((0, 0), (1, 1)))
    with pytest.raises(pydantic.ValidationError, match="kind"):
        Zone.model_validate({"name": "gate", "kind": "forbidden", "points": [[0, 0], [1, 0], [1, 1]]})


def test_zone_names_unique_and_profiles_load_from_plain_data() -> None:
    z = {"name": "gate", "kind": "restricted", "points": [[0, 0], [1, 0], [1, 1]]}
    with pytest.raises(pydantic.ValidationError, match="unique"):
        VisionSettings.model_validate({"zones": [z, z]})
    s = VisionSettings.model_validate(
        {"zones": [z], "profiles": {"schedule": {"night_start": "18:30", "night_end": "07:00"}}}
    )
    assert s.zones[0].points[1] == (1.0, 0.0)
    assert s.profiles.schedule.night_start == time(18, 30)
    assert s.profiles.night.min_threshold > s.profiles.day.min_threshold
    schema = VisionSettings.model_json_schema()
    assert "MotionSettings" in schema["$defs"]
