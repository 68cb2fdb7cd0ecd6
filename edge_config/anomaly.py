"""Settings of the streaming sensor-anomaly detectors (one detector per device point).

Spans and counts are in readings, except where a description says otherwise: the slow level
remembers a time (``level_days``, turned into a rate per reading with the nominal sampling
interval, which is learned as the readings come), the quiet after an alarm lasts a time
(``quiet_minutes``), a gap scales the change channel by time, and the daily channel and its
recurrence rule go by the clock. The defaults are the single configuration benchmarked on NAB, and the one the
cross-validated protocol of ``python -m bench.nab DIR --cv`` chooses when it is run on all shared
series (bench/ANOMALY_RESULTS.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from edge_config._base import Count, Number, Section

__all__ = ["DEFAULT_THRESHOLD", "MAX_MEMBERS", "AnomalySettings", "EnsembleSettings", "WindowedGaussianSettings"]

# The score at which an anomaly rule opens an incident, by default. It is what the full protocol
# of `python -m bench.nab DIR --cv` chooses when its automatic search runs on all 41 shared NAB
# series: the default configuration and, in each of NAB's three profiles, the threshold 0.24320096
# (the score of the alarm that makes the 55th detected window; tp 55, fp 44, fn 9). 0.2432 keeps
# exactly those detections (the next score below is 0.24305324). Only a reading that raises an
# alarm scores above 0, and the score is z / (z + z_scale): 0.2432 means a likelihood z of about
# 3.21 with z_scale = 10.
DEFAULT_THRESHOLD = 0.2432

# At most this many members (fast means) run per point: a resource limit (each costs as much time
# per reading as one detector); the benchmark's search never reaches it (short_span 8 makes four).
MAX_MEMBERS = 4


class WindowedGaussianSettings(Section):
    """Baseline: z-score of each reading against the mean and spread of the previous N readings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Count = Field(
        default=6400,
        ge=2,
        le=1_000_000,
        description="Readings in the sliding window (memory: 8 bytes each).",
    )


# Settings an older config may still hold, and what replaced them: unknown keys are errors anyway,
# but "extra inputs are not permitted" alone does not say what to write instead.
_REMOVED = {
    "level_span": "the level remembers a time now: write level_days (days, default 7) instead of a count of readings",
    "quantum": "the pattern bins are the Freedman-Diaconis width for the level's readings: delete the key",
    "rearm_z": "an event now lasts while the likelihood z stays at alarm_z: delete the key",
    "day_min": "a time-of-day bin is scored once it has day_span readings: delete the key",
    "suppress": "the quiet after an alarm is a time now: write quiet_minutes (default 60) instead of a count",
    "day_clip": "a time-of-day bin is clipped at alarm_z of its spreads now: delete the key",
    "fast_spans": "the fast means' spans follow short_span now (EnsembleSettings.fast_spans): delete the key",
}


class EnsembleSettings(Section):
    """Robust multi-channel detector with anomaly-likelihood post-processing and suppression."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_removed_settings(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, hint in _REMOVED.items():
                if name in data:
                    raise ValueError(f"{name!r} is no longer a setting (CHANGELOG.md): {hint}")
        return data

    level_days: Number = Field(
        default=7.0,
        ge=0.01,
        le=3650.0,
        description="Time, in days, the slow location/spread estimates of values and changes remember "
        "(rate per reading = nominal sampling interval / this time; a running mean until the interval is "
        "known). The pattern bins of the context channel are the Freedman-Diaconis width for the "
        "readings in this time. A week by default: it holds every day of the week once, so weekly "
        "rhythms are inside the estimate. A clock period, not fitted to data.",
    )
    clip: Number = Field(
        default=8.0,
        ge=0.5,
        le=1000.0,
        description="After warm-up a reading moves the slow estimates at most this many spreads. The context "
        "channel's pattern bins reach this far either side of the level (at most 64 bins a side); a value "
        "beyond is in the end bin. The default is what the benchmark's cross-validated search chooses on "
        "all shared series.",
    )
    short_span: Number = Field(
        default=5.0,
        ge=1.0,
        le=10_000.0,
        description="Span of the short-term average of each channel's raw score. It also sets the fast "
        "means' spans (fast_spans: a factor-2 ladder of lags under the short average's; 5 gives 1.5, 2 "
        "and 3), and so how many detectors run per point (changing their number discards a saved state).",
    )
    long_span: Count = Field(
        default=1000,
        ge=2,
        le=10_000_000,
        description="Span of the long-term mean and variance of each channel's raw score.",
    )
    warmup: Count = Field(
        default=200,
        ge=0,
        le=1_000_000,
        description="Readings before any score other than 0 is produced (and before the clip applies). "
        "The default is what the benchmark's cross-validated search chooses on all shared series.",
    )
    alarm_z: Number = Field(
        default=3.0,
        ge=0.0,
        le=1000.0,
        description="Likelihood z at which the detector considers it has raised an alarm, that an event "
        "stays at until it ends, and (in spreads of a time-of-day bin) beyond which a reading is an outlier "
        "for its bin's estimates. 3 by the three-sigma rule, not fitted to data (the benchmark does not "
        "search it).",
    )
    quiet_minutes: Number = Field(
        default=60.0,
        ge=0.0,
        le=10_000_000.0,
        description="Time after an alarm during which the point scores 0 (and then for as long as the "
        "likelihood z stays at alarm_z), never fewer than short_span readings: one event, one alarm. "
        "An hour by the clock, a product rule (one dispatch per event per hour), not fitted; a value "
        "unchanged for longer than this scores 0 too (a frozen sensor is the stuck rule's job).",
    )
    context_bits: Count = Field(
        default=12,
        ge=4,
        le=20,
        description="log2 of the pattern-table size (memory: 8 * 2**bits bytes per point).",
    )
    day_bins: Count = Field(
        default=24,
        ge=0,
        le=1440,
        description="Time-of-day bins of the daily channel (0 disables it; memory 24 B per bin).",
    )
    day_span: Number = Field(
        default=10.0,
        ge=1.0,
        le=100_000.0,
        description="Span, in readings of the same bin, of each bin's location and spread; it also sets "
        "the daily channel's two other quantities, so neither has a value of its own: a bin is scored once "
        "it has day_span readings (its average has left its running-mean start), and its unit never falls "
        "under 1/day_span of the level's spread (what one reading moves the bin's spread by: a finer bin "
        "spread is not resolved).",
    )
    recur_decay: Number = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Score factor per consecutive daily recurrence of an alarm (same or adjacent "
        "time-of-day bin, half a day to recur_days earlier): daily patterns fade. 1 disables.",
    )
    recur_days: Number = Field(
        default=2.0,
        ge=0.5,
        le=365.0,
        description="Oldest earlier alarm, in days, that an alarm at the same time of day repeats. 2: the "
        "smallest whole number of days that still holds yesterday's alarm in an adjacent hour bin (up to "
        "25 h old).",
    )
    z_scale: Number = Field(
        default=10.0,
        ge=0.1,
        le=1000.0,
        description="Score = z / (z + z_scale): the likelihood z at which the score is 0.5.",
    )

    @property
    def fast_spans(self) -> tuple[float, ...]:
        """Spans of the fast means that reveal level and variance shifts, one detector (member) each.

        A reading's score is the largest of the members' scores: a shift is judged at several
        speeds instead of one. The speeds follow ``short_span``: 1 + lag for lags of half a reading,
        one, two, ... (doubling) up to, not including, the short average's own lag (short_span - 1):
        the fastest is the EW mean with the noise of a two-reading mean (one reading is the level
        channel itself), and from the short average's lag on the likelihood's own short average
        smooths a shift anyway. At least one member, at most ``MAX_MEMBERS`` (the fastest ones).
        short_span 5 gives 1.5, 2 and 3. Written in session 11 knowing that it gives those (the
        list once set by hand on the shared series); it is bound to short_span, which the
        benchmark's search chooses in the folds (bench/ANOMALY_RESULTS.md, session 12).
        """
        spans = [1.5]
        while len(spans) < MAX_MEMBERS and 2.0 * (spans[-1] - 1.0) < self.short_span - 1.0:
            spans.append(1.0 + 2.0 * (spans[-1] - 1.0))
        return tuple(spans)


class AnomalySettings(Section):
    """Which detector scores a point, and its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Literal["ensemble", "windowed_gaussian"] = Field(
        default="ensemble",
        description="'ensemble' (default, the benchmarked detector) or 'windowed_gaussian'.",
    )
    ensemble: EnsembleSettings = Field(
        default_factory=EnsembleSettings, description="Settings of the ensemble detector."
    )
    windowed_gaussian: WindowedGaussianSettings = Field(
        default_factory=WindowedGaussianSettings,
        description="Settings of the windowed Gaussian baseline.",
    )
