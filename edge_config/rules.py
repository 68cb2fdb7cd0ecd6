"""Rules over readings: threshold, rate of change, stuck value, silence."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_config._base import Count, Identifier, Number, Section
from edge_config.anomaly import DEFAULT_THRESHOLD, AnomalySettings

__all__ = ["AnomalyRule", "RateRule", "Rule", "RuleBase", "SilenceRule", "StuckRule", "ThresholdRule"]

SeverityName = Literal["info", "minor", "major", "critical"]

PointPattern = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.*?\[\]-]+$"),
]


class RuleBase(Section):
    """What every rule has: where it applies and how its incidents are labelled and routed."""

    id: Identifier = Field(description="Rule id; part of the incident's dedup key.")
    devices: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Device ids or shell-style patterns ('water-*') the rule applies to.",
    )
    severity: SeverityName = Field(default="major", description="Severity of the incidents it opens.")
    department: str | None = Field(
        default=None, max_length=64, description="Department its incidents route to; overrides the device's."
    )
    cooldown_s: Number = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="After an incident resolves, a new breach within this time reopens it instead of a new one.",
    )
    update_interval_s: Number = Field(
        default=60.0, ge=1, le=86400, description="Least time between two 'updated' events of one open incident."
    )


class ThresholdRule(RuleBase):
    """Value above (or below) a limit for at least ``for_s`` seconds, with hysteresis on clearing."""

    kind: Literal["threshold"] = Field(description="Rule kind.")
    point: PointPattern = Field(
        description="Point the rule watches; a pattern ('*', 'level_*') watches each matching point."
    )
    above: Number | None = Field(default=None, description="Breach when the value is above this.")
    below: Number | None = Field(default=None, description="Breach when the value is below this.")
    hysteresis: Number = Field(
        default=0.0, ge=0, description="The value must come back this far inside the limit to clear."
    )
    for_s: Number = Field(default=0.0, ge=0, le=86400, description="Minimum breach duration before opening.")

    @model_validator(mode="after")
    def _one_limit(self) -> ThresholdRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        return self


class RateRule(RuleBase):
    """Value changes faster than ``max_per_s`` (in units per second) over ``window_s``."""

    kind: Literal["rate"] = Field(description="Rule kind.")
    point: PointPattern = Field(
        description="Point the rule watches; a pattern ('*', 'level_*') watches each matching point."
    )
    max_per_s: Number = Field(gt=0, description="Largest allowed absolute change per second.")
    window_s: Number = Field(default=60.0, gt=0, le=86400, description="Time span the change is measured over.")


class StuckRule(RuleBase):
    """Value does not change by more than ``tolerance`` for ``for_s`` seconds (a frozen sensor)."""

    kind: Literal["stuck"] = Field(description="Rule kind.")
    point: PointPattern = Field(
        description="Point the rule watches; a pattern ('*', 'level_*') watches each matching point."
    )
    for_s: Number = Field(gt=0, le=30 * 86400, description="How long a flat value must last.")
    tolerance: Number = Field(default=0.0, ge=0, description="Changes up to this size count as flat.")


class SilenceRule(RuleBase):
    """No reading from the device for ``for_s`` seconds: the device is offline."""

    kind: Literal["silence"] = Field(description="Rule kind.")
    for_s: Number = Field(gt=0, le=30 * 86400, description="Silence that makes the device offline.")


class AnomalyRule(RuleBase):
    """A streaming anomaly detector scores every reading; a score at or above ``threshold`` opens a
    sensor-anomaly incident, which resolves after ``resolve_after_s`` of scores below it."""

    kind: Literal["anomaly"] = Field(description="Rule kind.")
    point: PointPattern = Field(
        description="Point the rule watches; a pattern ('*', 'level_*') watches each matching point."
    )
    detector: AnomalySettings = Field(
        default_factory=AnomalySettings, description="Detector and its settings (defaults: the benchmarked ensemble)."
    )
    threshold: Number = Field(
        default=DEFAULT_THRESHOLD,
        gt=0,
        le=1,
        description="Score that raises an incident. The default, 0.2432, is what the cross-validated protocol "
        "(python -m bench.nab DIR --cv) chooses for the default detector when run on all shared NAB series, in "
        "each of NAB's three profiles (standard, low FP, low FN). Raise it on a noisy point to get fewer "
        "false alarms: the score is z / (z + z_scale), so 0.3 needs a likelihood z of about 4.3, 0.4 about 6.7.",
    )
    resolve_after_s: Number = Field(
        default=600.0, ge=0, le=7 * 86400, description="Scores below the threshold this long resolve the incident."
    )
    evidence_readings: Count = Field(
        default=120,
        ge=8,
        le=10_000,
        description="Readings kept as evidence around the onset: three quarters before it, one quarter after.",
    )


Rule = Annotated[ThresholdRule | RateRule | StuckRule | SilenceRule | AnomalyRule, Field(discriminator="kind")]
