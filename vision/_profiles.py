"""Which motion profile (day or night) is in force: a pure function of the clock and IR state."""

from __future__ import annotations

from datetime import time

from edge_config.vision import MotionSettings, VisionProfiles

__all__ = ["active_profile"]


def active_profile(profiles: VisionProfiles, now: time, ir_on: bool | None = None) -> tuple[str, MotionSettings]:
    """Return ``("day"|"night", settings)`` for local time ``now``.

    When the camera reports its IR state (``ir_on`` not None) and the schedule follows IR, IR on
    means night. Otherwise the schedule's night window applies; it may wrap past midnight. Pass the
    result to :meth:`vision.MotionDetector.set_settings` when it changes.
    """
    sch = profiles.schedule
    if ir_on is not None and sch.follow_ir:
        night = ir_on
    elif sch.night_start <= sch.night_end:
        night = sch.night_start <= now < sch.night_end
    else:
        night = now >= sch.night_start or now < sch.night_end
    return ("night", profiles.night) if night else ("day", profiles.day)
