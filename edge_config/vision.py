"""Settings of the on-box vision stage: motion detection, zones, tamper detection, day/night profiles.

Pure pydantic v2 models, no I/O. Runtime values derived from them (rasterised zone masks, the
profile in force at a given time) come from small pure functions in :mod:`vision`, never from
validators.
"""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import Field, model_validator

from edge_config._base import Count, Number, Section

__all__ = [
    "EventSettings",
    "MotionSettings",
    "ProfileSchedule",
    "Stabilise",
    "TamperSettings",
    "VisionBase",
    "VisionProfiles",
    "VisionSettings",
    "Zone",
]


Stabilise = Literal["auto", "on", "off"]
"""Shake compensation of a camera's motion detection (see ``VisionSettings.stabilise``)."""


class VisionBase(Section):
    """Base of every vision settings model: ``extra="forbid"``, ``frozen=True`` (from Section)."""


class MotionSettings(VisionBase):
    """Pixel motion detection. The defaults are the one parameter set used on every video.

    The same defaults score the CDnet figure in ``bench/VISION_RESULTS.md``; they are not tuned
    per camera.
    """

    analysis_width: Count = Field(
        default=320,
        ge=16,
        le=1920,
        description="Target width in pixels of the analysis frame; the input is area-downscaled by "
        "the integer factor max(1, width // analysis_width) in the same pass as the rest.",
    )
    blur: bool = Field(default=False, description="Light 3x3 blur of the analysis frame before the test.")
    threshold_sigma: Number = Field(
        default=3.5,
        ge=1.0,
        le=20.0,
        description="A pixel is foreground when its difference from the background exceeds this "
        "many times its own noise level (running mean absolute deviation).",
    )
    weak_fraction: Number = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Differences above this fraction of the threshold count half in the clean-up "
        "filter: they join an object next to them but never make one alone (0 = off).",
    )
    min_threshold: Number = Field(
        default=14.0,
        ge=1.0,
        le=128.0,
        description="Smallest luma difference (0..255) ever called foreground, whatever the noise.",
    )
    noise_floor_gain: Number = Field(
        default=2.5,
        ge=0.0,
        le=20.0,
        description="The frame-wide floor also follows this many times the median noise level "
        "measured while the scene is idle (adapts to night grain).",
    )
    chroma_threshold: Number = Field(
        default=7.0,
        ge=0.0,
        le=128.0,
        description="Chroma difference (U/V, 0..255) that makes a pixel foreground on its own; "
        "0 turns the chroma planes off.",
    )
    shadow_min_ratio: Number = Field(
        default=0.12,
        ge=0.0,
        le=1.0,
        description="Pixels darker than the background by a luma ratio in [shadow_min_ratio, "
        "shadow_max_ratio] whose chroma darkens by the same ratio are shadows, not motion "
        "(needs chroma; 0 turns it off).",
    )
    shadow_max_ratio: Number = Field(
        default=0.35, ge=0.0, le=1.0, description="Upper luma ratio of a shadow; see shadow_min_ratio."
    )
    shadow_chroma: Number = Field(
        default=3.0,
        ge=0.0,
        le=64.0,
        description="Largest chroma deviation (0..255) from a pure darkening still called shadow.",
    )
    shade: bool = Field(
        default=True,
        description="Lighter darkening too (a luma ratio above shadow_max_ratio, as under a passing cloud) is "
        "shade, not motion, where the chroma darkens alike and the local contrast scales by the same "
        "ratio (within the pixel's threshold): an object brings its own contrast. Where the background has "
        "neither colour nor contrast to test (flat grey), a shadow or shade must also have come gradually: "
        "a darkening that arrives at once there is an object.",
    )
    background_alpha: Number = Field(
        default=0.04,
        ge=0.0005,
        le=0.5,
        description="Per-frame learning rate of the background where no motion is seen.",
    )
    noise_alpha: Number = Field(
        default=0.01,
        ge=0.0005,
        le=0.5,
        description="Per-frame learning rate of the per-pixel noise level.",
    )
    absorb_after_s: Number = Field(
        default=120.0,
        ge=0.5,
        le=3600.0,
        description="An object that stays still longer than this becomes background: a person who stops "
        "in a restricted zone stays an intrusion this long (more than a minute by default).",
    )
    global_change_fraction: Number = Field(
        default=0.6,
        ge=0.1,
        le=1.0,
        description="When more than this fraction of the frame changes at once (lights, IR switch, "
        "clouds) while the frame keeps the old view's structure, the frame is reported as a global change "
        "and the background relearns fast; a change that replaces the structure (leaves or a person in "
        "front of the lens) stays motion, for 5 s at most: a view changed that long is relearned.",
    )
    relearn_s: Number = Field(
        default=1.0,
        ge=0.1,
        le=60.0,
        description="How long the fast relearning lasts after a global change; it learns fast enough to leave "
        "5% of the old view by then, at any frame rate.",
    )
    edge_tolerance: Number = Field(
        default=0.5,
        ge=0.0,
        le=8.0,
        description="Camera shake: a pixel is foreground only if its luma difference also exceeds "
        "the threshold plus this many times the background's slope there (grey levels per "
        "analysis pixel), since a shake of s pixels changes a pixel on an edge by about s times "
        "the slope. A difference between the two thresholds counts half, like a weak one "
        "(0 = off).",
    )
    neighbour_tolerance: bool = Field(
        default=True,
        description="Moving leaves, ripples and a camera shaken by a pixel: a luma difference is motion only "
        "where the pixel also differs from the background of each of its 8 neighbours (at analysis size). "
        "Off, an object of a pixel or two is seen more surely.",
    )
    sample_veto: bool = Field(
        default=True,
        description="Water, waves and leaves from the first frame on: each pixel keeps a few past values of itself "
        "and its neighbours, with their local texture (ViBe/LOBSTER-style sample sets, 24 bytes a pixel at "
        "analysis size); motion whose value and texture match two of them counts only next to other motion.",
    )
    ghost_reset: bool = Field(
        default=True,
        description="Ghosts: where an object that was learned as background (there in the first frame) has left, the "
        "revealed background is learned at once when the edges along its outline are the background's and not the "
        "frame's and it has not moved for 0.8 s; a person who stops keeps their own outline and stays motion.",
    )
    veil: bool = Field(
        default=True,
        description="Smoke, fog or steam over the view: a connected region of foreground that is brighter than the "
        "background and flat (no structure of its own) and covers at least a fifth of the view counts only next to "
        "other motion; an object in it keeps its edges and stays motion.",
    )
    cleanup_radius: Count = Field(
        default=3,
        ge=0,
        le=4,
        description="Radius of the majority filter applied to the mask (3 = 7x7 median).",
    )
    min_box_area: Count = Field(
        default=12,
        ge=1,
        le=1_000_000,
        description="Connected components smaller than this (analysis pixels) are dropped.",
    )
    max_boxes: Count = Field(
        default=64,
        ge=1,
        le=4096,
        description="At most this many boxes are reported, largest first.",
    )


class Zone(VisionBase):
    """A polygon drawn by the technician, in normalised 0..1 frame coordinates."""

    name: str = Field(min_length=1, max_length=64, description="Zone name, unique per camera.")
    kind: Literal["restricted", "motion", "ignore"] = Field(
        default="motion",
        description="restricted: an object inside opens an intrusion incident; motion: "
        "motion-in-zone; ignore: pixels never count as motion.",
    )
    points: tuple[tuple[float, float], ...] = Field(
        min_length=3,
        max_length=64,
        description="Polygon vertices (x, y), each in 0..1 of the frame width and height.",
    )
    min_fraction: Number = Field(
        default=0.002,
        ge=0.0,
        le=1.0,
        description="Fraction of the zone that must be in motion for it to count.",
    )

    @model_validator(mode="after")
    def _points_normalised(self) -> Zone:
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                msg = f"zone {self.name!r}: point ({x}, {y}) is outside 0..1; use fractions of the frame"
                raise ValueError(msg)
        return self


class EventSettings(VisionBase):
    """Hysteresis that turns per-frame motion into events."""

    on_frames: Count = Field(default=3, ge=1, le=100, description="Frames in motion before an event opens.")
    off_frames: Count = Field(default=15, ge=1, le=1000, description="Quiet frames before it closes.")
    on_within_s: Number = Field(
        default=0.8,
        ge=0.0,
        le=60.0,
        description="Fewer frames in motion than on_frames also open an event once they span this long (at "
        "least two frames): at 1 or 2 analysed frames a second (key frames) a quick crossing is still caught.",
    )
    off_within_s: Number = Field(
        default=5.0,
        ge=0.0,
        le=600.0,
        description="Fewer quiet frames than off_frames also close an event once they span this long.",
    )
    min_area_fraction: Number = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        description="Smallest box, as a fraction of the frame, that counts as an object.",
    )


class TamperSettings(VisionBase):
    """Camera-tamper detection: covered, defocused, moved, frozen."""

    enabled: bool = Field(default=True, description="Run tamper detection at all.")
    analysis_width: Count = Field(
        default=160, ge=32, le=640, description="Width of the small frame tamper statistics use."
    )
    interval_s: Number = Field(
        default=0.2,
        ge=0.0,
        le=5.0,
        description="Check at most this often (frames in between are skipped): conditions are debounced over "
        "seconds, and each check reads the whole frame again, as much as the motion stage at 1080p.",
    )
    raise_after_s: Number = Field(
        default=1.5, ge=0.0, le=60.0, description="A condition must hold this long to be raised."
    )
    resolve_after_s: Number = Field(
        default=3.0, ge=0.0, le=600.0, description="A raised condition must be gone this long to resolve."
    )
    learn_s: Number = Field(default=3.0, ge=0.5, le=600.0, description="Time to learn the reference view after start.")
    reference_alpha: Number = Field(
        default=0.01, ge=0.0001, le=0.5, description="Learning rate of the reference view while normal."
    )
    covered_std: Number = Field(
        default=6.0, ge=0.0, le=128.0, description="Covered when the frame's luma spread falls below this."
    )
    covered_edge_ratio: Number = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Covered when edge energy falls below this fraction of the reference's.",
    )
    defocus_ratio: Number = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="Defocused when fine-detail energy falls below this fraction of the reference's.",
    )
    moved_correlation: Number = Field(
        default=0.35,
        ge=-1.0,
        le=1.0,
        description="Moved when the edge structure correlates with the reference below this.",
    )
    moved_tolerance: Number = Field(
        default=0.02,
        ge=0.0,
        le=0.1,
        description="Shifts of the view up to about this fraction of its width (camera shake, a swaying "
        "mast) are not a move: when the sharp edge maps disagree, they are compared blurred over this size.",
    )
    frozen_after_s: Number = Field(
        default=2.0,
        ge=0.1,
        le=600.0,
        description="Frozen when every frame has been bit-identical for this long.",
    )


class ProfileSchedule(VisionBase):
    """When the night profile is in force (local time); it may wrap past midnight."""

    night_start: time = Field(default=time(19, 0), description="Night profile starts at this time.")
    night_end: time = Field(default=time(6, 30), description="Night profile ends at this time.")
    follow_ir: bool = Field(
        default=True,
        description="Once a camera has been seen in its IR mode (its picture turns monochrome), that "
        "mode wins over the clock: monochrome is night, colour is day. A camera never seen in IR mode "
        "follows the clock.",
    )


class VisionProfiles(VisionBase):
    """Day and night motion settings and the schedule that switches between them."""

    day: MotionSettings = Field(default_factory=MotionSettings, description="Daytime settings.")
    night: MotionSettings = Field(
        default_factory=lambda: MotionSettings(threshold_sigma=4.5, min_threshold=18.0),
        description="Night settings (grainier image: a little less sensitive).",
    )
    schedule: ProfileSchedule = Field(default_factory=ProfileSchedule, description="When the night profile applies.")


class VisionSettings(VisionBase):
    """All vision settings of one camera."""

    profiles: VisionProfiles = Field(default_factory=VisionProfiles, description="Day/night motion profiles.")
    events: EventSettings = Field(default_factory=EventSettings, description="Motion event hysteresis.")
    tamper: TamperSettings = Field(default_factory=TamperSettings, description="Tamper detection.")
    zones: tuple[Zone, ...] = Field(default=(), max_length=32, description="Restricted, motion and ignore zones.")
    stabilise: Stabilise = Field(
        default="auto",
        description="Shake compensation: align frames to the learned background before the motion test, "
        "for a camera on a pole or mast that shakes in the wind (0.2 to 0.6 ms a frame while on). "
        '"auto" measures the shake every 50 frames and aligns while there is some, "on" aligns every '
        'frame, "off" never. Without it, a shake of a pixel or more shows as motion along edges.',
    )

    @model_validator(mode="after")
    def _zone_names_unique(self) -> VisionSettings:
        names = [z.name for z in self.zones]
        if len(names) != len(set(names)):
            msg = "zone names must be unique per camera"
            raise ValueError(msg)
        return self
