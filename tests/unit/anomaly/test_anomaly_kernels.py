"""Anomaly kernels against the plain NumPy references in naive.py, plus the wrapper contract."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import numpy.testing as npt
import pydantic
import pytest

from anomaly import PointDetector, _kernels, make_detector
from edge_config.anomaly import DEFAULT_THRESHOLD, AnomalySettings, EnsembleSettings, WindowedGaussianSettings


def _load_naive() -> ModuleType:
    # Other test folders hold a naive.py too and these folders are not packages: load ours
    # under a unique name instead of `import naive`.
    name = "tests_unit_anomaly_naive"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("naive.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


naive = _load_naive()
RNG = np.random.default_rng(20261127)

# A small, busy configuration: short spans and warm-up so clipping and suppression are exercised
# within a few thousand values.
SMALL_ENS = EnsembleSettings(
    level_days=0.6,  # about 51 readings 17 minutes apart: bins 0.91 spreads wide, three a side
    clip=3.0,
    short_span=4.0,  # members with fast spans 1.5, 2 and 3
    long_span=80,
    warmup=20,
    alarm_z=2.0,
    quiet_minutes=85.0,  # five readings 17 minutes apart
    context_bits=6,
    day_bins=8,
    day_span=4.0,
    recur_decay=0.5,  # large steps, so a wrong recurrence count shows in the comparison
    recur_days=2.0,
    z_scale=10.0,
)
SMALL_GAUSS = WindowedGaussianSettings(window=16)


def _random_walk(n: int) -> np.ndarray:
    return np.cumsum(RNG.normal(size=n)) + 5.0 * (RNG.random(n) < 0.01) * RNG.normal(size=n)


def _with_gaps(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[RNG.random(len(out)) < 0.05] = np.nan
    out[7 % max(len(out), 1) :: 97] = np.inf
    return out


def _daily_spikes(n: int) -> np.ndarray:
    # A spike at the same time each day (values come every 1020 s, see _times): alarms that
    # recur day after day, the case the recurrence count and its score factor are for.
    out = RNG.normal(size=n)
    day_index = np.arange(n) * 1020 // 86400
    first_of_day = np.flatnonzero(np.diff(day_index, prepend=-1))
    spikes = first_of_day[2:] + 40
    out[spikes[spikes < n]] += 8.0
    return out


CASES = {
    "normal": RNG.normal(size=3000),
    "daily_spikes": _daily_spikes(3000),
    "random_walk_spikes": _random_walk(3000),
    "with_nan_and_inf": _with_gaps(RNG.normal(size=2000)),
    "constant": np.full(500, 3.25),
    "constant_then_step": np.concatenate([np.full(300, 1.0), np.full(300, 7.0)]),
    "empty": np.zeros(0),
    "one": np.array([4.0]),
    "two": np.array([4.0, 5.0]),
    "three_with_nan": np.array([np.nan, 1.0, 2.0]),
    "all_nan": np.full(50, np.nan),
    "huge": 1e100 * (1.0 + RNG.normal(size=1000)),
    "tiny": 1e-100 * RNG.normal(size=1000),
    "offset_1e12": 1e12 + RNG.normal(size=1000),
    "beyond_max_abs": np.array([1.0, 2.0, 1e200, 3.0, -1e300, 2.0] * 10),
}


Kind = Literal["ensemble", "windowed_gaussian"]
KINDS: list[Kind] = ["ensemble", "windowed_gaussian"]


def _times(n: int) -> np.ndarray:
    # 17 minutes apart: bins of an 8-bin day fill at different rates; a NaN time now and then
    # (it only skips the daily channel).
    t = 1.7e9 + np.arange(n, dtype=np.float64) * 1020.0
    t[5::211] = np.nan
    return t


@pytest.mark.parametrize("case", sorted(CASES))
def test_windowed_gaussian_matches_reference(case: str) -> None:
    values = CASES[case]
    det = make_detector(AnomalySettings(detector="windowed_gaussian", windowed_gaussian=SMALL_GAUSS))
    got = det.score_batch(values, _times(len(values)))
    want = naive.windowed_gaussian(values, SMALL_GAUSS.window)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_ensemble_matches_reference(case: str) -> None:
    values = CASES[case]
    det = make_detector(AnomalySettings(detector="ensemble", ensemble=SMALL_ENS))
    got = det.score_batch(values, _times(len(values)))
    want = naive.ensemble(values, _times(len(values)), SMALL_ENS)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_ensemble_matches_reference_with_the_context_bins_capped() -> None:
    # clip 100 asks for 110 bins of 0.91 spreads either side of the level: the key allows 64.
    cfg = SMALL_ENS.model_copy(update={"clip": 100.0})
    values = CASES["random_walk_spikes"]
    got = make_detector(AnomalySettings(ensemble=cfg)).score_batch(values, _times(len(values)))
    want = naive.ensemble(values, _times(len(values)), cfg)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", ["normal", "random_walk_spikes", "with_nan_and_inf"])
def test_ensemble_default_settings_match_reference(case: str) -> None:
    values = CASES[case]
    cfg = EnsembleSettings()
    got = make_detector().score_batch(values, _times(len(values)))
    want = naive.ensemble(values, _times(len(values)), cfg)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def _irregular_times(n: int) -> np.ndarray:
    # Jittered one-minute readings with a burst (10 s apart), gaps of 2 h and of 3 days, a
    # repeated stamp, one going back in time and a NaN now and then: every branch of the clock.
    dt = 60.0 * (1.0 + 0.3 * RNG.uniform(-1.0, 1.0, size=n))
    dt[n // 5 : n // 5 + 30] = 10.0
    dt[n // 3] = 7200.0
    dt[n // 2] = 3 * 86400.0
    dt[2 * n // 3] = 0.0
    dt[2 * n // 3 + 5] = -30.0
    t = 1.7e9 + np.cumsum(dt)
    t[11::301] = np.nan
    return t


@pytest.mark.parametrize("case", ["normal", "random_walk_spikes", "with_nan_and_inf", "constant_then_step"])
def test_ensemble_matches_reference_on_irregular_times(case: str) -> None:
    values = CASES[case]
    times = _irregular_times(len(values))
    got = make_detector(AnomalySettings(ensemble=SMALL_ENS)).score_batch(values, times)
    want = naive.ensemble(values, times, SMALL_ENS)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_ensemble_matches_reference_without_any_time() -> None:
    # No finite time ever: no nominal interval, so the level is a running mean of every reading
    # and the pattern bins narrow with the readings seen (the daily channel is off).
    values = CASES["random_walk_spikes"]
    times = np.full(len(values), np.nan)
    got = make_detector(AnomalySettings(ensemble=SMALL_ENS)).score_batch(values, times)
    want = naive.ensemble(values, times, SMALL_ENS)
    npt.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    assert got.max() > 0.0


def test_a_gap_is_not_a_jump() -> None:
    # A random walk read every minute, then nothing for two hours: the walk has moved on by
    # about sqrt(120) steps. That move, divided by sqrt(k) = sqrt(120), is an ordinary change.
    rng = np.random.default_rng(11)
    n = 3000
    steps = rng.normal(size=n)
    steps[2000] = rng.normal() * np.sqrt(120.0)
    values = np.cumsum(steps)
    dt = np.full(n, 60.0)
    dt[2000] = 7200.0
    times = 1.7e9 + np.cumsum(dt)
    scores = make_detector().score_batch(values, times)
    as_counted = make_detector().score_batch(values, 1.7e9 + 60.0 * np.arange(n, dtype=np.float64))
    # Judged by count, the same values would make the move one step's worth (a large change)
    assert scores[2000:2010].max() < 0.2308  # below the alarm (z = 3) and the rule's threshold
    assert scores[2000:2010].max() <= as_counted[2000:2010].max()


def _level_after(values: np.ndarray, interval: float) -> float:
    det = make_detector()
    det.score_batch(values, 1.7e9 + interval * np.arange(len(values), dtype=np.float64))
    # Every member keeps the same level (it does not depend on the fast span): read the first's.
    return float(det._state[0, _kernels._M])


@pytest.mark.parametrize("interval", [300.0, 3600.0])
def test_the_level_remembers_a_week_by_the_clock_whatever_the_sampling_interval(interval: float) -> None:
    # Readings alternating +-1 for three weeks, then 2 higher for one day. Whether they come every
    # 5 minutes or every hour, the level takes in the same part of the step in that day:
    # 1 - exp(-1 day / 7 days) = 0.133 (a memory counted in readings would take 12 times less
    # of it at the hourly rate, with 12 times fewer readings in the day).
    per_day = round(86400.0 / interval)
    before = np.where(np.arange(21 * per_day) % 2 == 0, 1.0, -1.0)
    after = 2.0 + before[:per_day]
    level_before = _level_after(before, interval)
    level_after = _level_after(np.concatenate([before, after]), interval)
    absorbed = (level_after - level_before) / 2.0
    assert absorbed == pytest.approx(1.0 - np.exp(-1.0 / 7.0), abs=0.003)


def test_the_pattern_bins_are_the_freedman_diaconis_width_for_the_levels_readings() -> None:
    # NumPy's own Freedman-Diaconis rule (2 IQR n^(-1/3)) on a week of normal readings, in mean
    # absolute deviations (the detector's spread), against the kernel's width for that week.
    week = 7 * 86400.0
    rng = np.random.default_rng(5)
    for interval, width in ((300.0, 0.268), (3600.0, 0.613)):
        rate, kernel_width = _kernels._level_scale(week, interval, 0.0)
        assert rate == interval / week
        assert kernel_width == pytest.approx(width, abs=5e-4)
        sample = rng.normal(size=round(week / interval))
        edges = np.histogram_bin_edges(sample, bins="fd")
        mad = np.mean(np.abs(sample - sample.mean()))
        assert (edges[1] - edges[0]) / mad == pytest.approx(kernel_width, rel=0.1)
    # No nominal interval yet (one timed reading so far, or no finite times): the running mean of
    # the readings so far, and the width for them.
    rate, width = _kernels._level_scale(week, 0.0, 99.0)
    assert rate == 0.0
    assert width == pytest.approx(2.0 * 1.349 * np.sqrt(np.pi / 2.0) / 100.0 ** (1.0 / 3.0))


def test_a_stuck_sensor_raises_one_alarm_at_most() -> None:
    # Five-minute readings of a daily cycle; on day 5 the sensor freezes for six hours. Against
    # the time of day the frozen value soon looks wrong, but a value frozen for longer than the
    # quiet time after an alarm (12 intervals) is the stuck rule's job: no storm of alarms.
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 288 * 8
        times = 1.7e9 + 300.0 * np.arange(n, dtype=np.float64)
        values = 20.0 + 3.0 * np.sin(2.0 * np.pi * np.arange(n) / 288.0) + 0.3 * rng.normal(size=n)
        start, end = 288 * 5, 288 * 5 + 72
        values[start:end] = values[start]
        scores = make_detector().score_batch(values, times)
        alarms = np.flatnonzero(scores[288:] >= DEFAULT_THRESHOLD) + 288
        assert len(alarms) <= 1, alarms
        assert all(a == end for a in alarms)  # if any: the reading that moves again
        assert scores[start + 13 : end].max() == 0.0


def test_the_daily_channel_flags_a_value_that_is_usual_but_not_at_that_hour() -> None:
    # Five-minute readings of a daily cycle; on day 7 the sensor keeps reporting its 06:00 value
    # (with its noise) until noon. Every reading stays inside the series' range and changes as little
    # as usual: only the time of day says it is wrong, so only the daily channel can flag it.
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 288 * 8
        times = 1_700_006_400.0 + 300.0 * np.arange(n, dtype=np.float64)  # from a midnight (UTC)
        cycle = 10.0 * np.sin(2.0 * np.pi * np.arange(n) / 288.0)
        values = cycle + 0.3 * rng.normal(size=n)
        start, end = 288 * 6 + 72, 288 * 6 + 144
        values[start:end] = cycle[start] + 0.3 * rng.normal(size=end - start)
        with_daily = make_detector().score_batch(values, times)
        without = make_detector(AnomalySettings(ensemble=EnsembleSettings(day_bins=0))).score_batch(values, times)
        assert with_daily[start:end].max() >= DEFAULT_THRESHOLD
        assert without[start:end].max() < 0.5 * DEFAULT_THRESHOLD
        assert with_daily[288:start].max() < DEFAULT_THRESHOLD  # the learned days raise nothing


def test_ensemble_fires_on_an_obvious_spike() -> None:
    values = np.sin(np.arange(2000) / 10.0) + 0.01 * RNG.normal(size=2000)
    values[1500] += 5.0
    scores = make_detector().score_batch(values, _times(2000))
    # After the daily channel has settled (its bins need day_span values: ~3 simulated days here)
    assert 1000 + int(np.argmax(scores[1000:])) in range(1500, 1503)
    assert scores[1500:1503].max() > 2 * scores[1000:1490].max()


def test_an_alarm_recurring_daily_fades_and_a_one_off_keeps_its_score() -> None:
    # Five-minute readings for 14 days from midnight. From day 3 a step of +10 over four
    # readings at 03:00 every day, and once, on day 9, the same step at 12:30.
    n = 288 * 14
    times = 1_700_006_400.0 + 300.0 * np.arange(n, dtype=np.float64)  # from a midnight (UTC)
    values = np.random.default_rng(7).normal(size=n)  # own generator: same data in any test order
    daily = np.arange(3, 14) * 288 + 36
    one_off = 288 * 9 + 150
    for k in range(4):
        values[daily + k] += 10.0
        values[one_off + k] += 10.0
    faded = make_detector().score_batch(values, times)
    plain = make_detector(AnomalySettings(ensemble=EnsembleSettings(recur_decay=1.0))).score_batch(values, times)
    # Only the alarms of days 4 to 13 are scaled, by recur_decay per consecutive day (the likelihood z
    # itself does not depend on the recurrences); the first day's and the one-off alarm are not.
    scaled = np.flatnonzero(faded != plain)
    assert len(scaled) == 10
    assert all(daily[d] <= i < daily[d] + 4 for d, i in zip(range(1, 11), scaled, strict=True))
    npt.assert_allclose(faded[scaled] / plain[scaled], EnsembleSettings().recur_decay ** np.arange(1, 11))
    # Both unscaled steps did raise an alarm (a score, then the suppression's zeros).
    for start in (daily[0], one_off):
        assert faded[start : start + 4].max() > 0.2
        assert faded[start + 4 : start + 12].max() == 0.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_scores_are_finite_and_in_unit_interval(kind: Kind, case: str) -> None:
    values = CASES[case]
    det = make_detector(AnomalySettings(detector=kind, ensemble=SMALL_ENS, windowed_gaussian=SMALL_GAUSS))
    scores = det.score_batch(values, _times(len(values)))
    assert np.isfinite(scores).all()
    assert ((scores >= 0.0) & (scores <= 1.0)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_missing_values_score_zero_and_leave_state_untouched(kind: Kind) -> None:
    det = make_detector(AnomalySettings(detector=kind))
    det.score_batch(RNG.normal(size=300), _times(300))
    before = det.state()
    for bad in (np.nan, np.inf, -np.inf, 1e151, -1e200):
        assert det.update(bad, 0.0) == 0.0
    assert det.state() == before


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_value_by_value(kind: Kind) -> None:
    settings = AnomalySettings(detector=kind, ensemble=SMALL_ENS, windowed_gaussian=SMALL_GAUSS)
    values = CASES["with_nan_and_inf"]
    times = _times(len(values))
    batch = make_detector(settings).score_batch(values, times)
    live = make_detector(settings)
    one_by_one = np.array([live.update(v, t) for v, t in zip(values, times, strict=True)])
    npt.assert_array_equal(batch, one_by_one)


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_continues_identically(kind: Kind) -> None:
    settings = AnomalySettings(detector=kind, ensemble=SMALL_ENS, windowed_gaussian=SMALL_GAUSS)
    values = CASES["random_walk_spikes"]
    times = _times(len(values))
    whole = make_detector(settings).score_batch(values, times)
    first = make_detector(settings)
    head = first.score_batch(values[:1234], times[:1234])
    restored = PointDetector.restore(settings, first.state())
    tail = restored.score_batch(values[1234:], times[1234:])
    npt.assert_array_equal(np.concatenate([head, tail]), whole)


def test_restore_accepts_retuned_levels_and_continues_with_them() -> None:
    values = CASES["random_walk_spikes"]
    times = _times(len(values))
    first = make_detector()
    first.score_batch(values[:2000], times[:2000])
    retuned = AnomalySettings(ensemble=EnsembleSettings(alarm_z=2.0, quiet_minutes=25.0))
    restored = PointDetector.restore(retuned, first.state())
    reference = PointDetector.restore(AnomalySettings(), first.state())
    tail_retuned = restored.score_batch(values[2000:], times[2000:])
    tail_default = reference.score_batch(values[2000:], times[2000:])
    # Same learned state, different suppression: the outputs differ only where suppression acts.
    assert not np.array_equal(tail_retuned, tail_default)
    both = (tail_retuned > 0) & (tail_default > 0)
    npt.assert_allclose(tail_retuned[both], tail_default[both])


def test_restore_refuses_other_layouts_and_garbage() -> None:
    blob = make_detector().state()
    other = AnomalySettings(ensemble=EnsembleSettings(context_bits=10))
    with pytest.raises(ValueError, match="another detector or state layout"):
        PointDetector.restore(other, blob)
    with pytest.raises(ValueError, match="another detector or state layout"):
        PointDetector.restore(AnomalySettings(ensemble=EnsembleSettings(day_bins=48)), blob)
    with pytest.raises(ValueError, match="another detector or state layout"):
        PointDetector.restore(AnomalySettings(ensemble=EnsembleSettings(short_span=3.0)), blob)  # two members
    with pytest.raises(ValueError, match="another detector or state layout"):
        PointDetector.restore(AnomalySettings(detector="windowed_gaussian"), blob)
    with pytest.raises(ValueError, match="not a detector state"):
        PointDetector.restore(AnomalySettings(), b"nope")
    with pytest.raises(ValueError, match="not a detector state"):
        PointDetector.restore(AnomalySettings(), b"XXXX" + blob[4:])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        PointDetector.restore(AnomalySettings(), blob[:-8])


def test_restore_refuses_state_saved_in_an_older_format() -> None:
    # Format 1 had no alarm memory in the daily state, format 2 no clock (last time, nominal
    # interval), format 3 one member only, format 4 a forgetting pattern table (its growth factor
    # in the state), format 5 pattern bins of 0.25 spreads: such a blob must start afresh, cleanly.
    blob = make_detector().state()
    for version in (1, 2, 3, 4, 5):
        old = blob[:4] + version.to_bytes(2, "little") + blob[6:]
        with pytest.raises(ValueError, match=rf"state format {version}, this is format 6.*start afresh"):
            PointDetector.restore(AnomalySettings(), old)


@pytest.mark.parametrize("kind", KINDS)
def test_memory_is_fixed_at_creation(kind: Kind) -> None:
    det = make_detector(AnomalySettings(detector=kind))
    size = len(det.state())
    det.score_batch(RNG.normal(size=20_000), _times(20_000))
    assert len(det.state()) == size


def test_wrapper_rejects_bad_arrays_with_a_fix_hint() -> None:
    det = make_detector()
    with pytest.raises(TypeError, match=r"astype\(np.float64\)"):
        det.score_batch(np.zeros(3, dtype=np.float32), _times(3))
    with pytest.raises(TypeError, match=r"np.asarray"):
        det.score_batch([1.0, 2.0], _times(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ravel"):
        det.score_batch(np.zeros((2, 2)), _times(4))
    with pytest.raises(ValueError, match="one time per value"):
        det.score_batch(np.zeros(3), _times(4))


def test_non_contiguous_input_is_accepted() -> None:
    values = RNG.normal(size=400)
    det_a, det_b = make_detector(), make_detector()
    npt.assert_array_equal(
        det_a.score_batch(values[::2], _times(200)),
        det_b.score_batch(np.ascontiguousarray(values[::2]), _times(200)),
    )


def test_settings_are_strict_bounded_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        EnsembleSettings(level_days=0.0)
    with pytest.raises(pydantic.ValidationError):
        EnsembleSettings(unknown_field=1)  # type: ignore[call-arg]
    # An older config's removed settings are refused with what to write instead.
    removed = {
        "level_span": (2000, "level_days"),
        "quantum": (0.25, "delete the key"),
        "rearm_z": (3.5, "alarm_z"),
        "day_min": (10, "day_span"),
        "suppress": (12, "quiet_minutes"),
        "day_clip": (2.0, "alarm_z"),
        "fast_spans": ((1.5, 2.0, 3.0), "short_span"),
    }
    for key, (value, hint) in removed.items():
        with pytest.raises(pydantic.ValidationError, match=rf"'{key}' is no longer a setting.*{hint}"):
            AnomalySettings.model_validate({"ensemble": {key: value}})
    with pytest.raises(pydantic.ValidationError):
        AnomalySettings(detector="magic")  # type: ignore[arg-type]
    cfg = AnomalySettings()
    with pytest.raises(pydantic.ValidationError):
        cfg.detector = "windowed_gaussian"
    for model in (EnsembleSettings, WindowedGaussianSettings, AnomalySettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="kernels are plain Python with the JIT off")
def test_kernels_are_njit_cached_nogil_with_the_single_fastmath_constant() -> None:
    from numba.core.registry import CPUDispatcher

    from anomaly import _kernels

    functions = {
        name: obj
        for name, obj in vars(_kernels).items()
        if callable(obj) and getattr(obj, "__module__", None) == _kernels.__name__
    }
    assert len(functions) >= 5
    for name, fn in functions.items():
        assert isinstance(fn, CPUDispatcher), f"{name} is not an njit kernel"
        assert fn.targetoptions["nogil"] is True, name
        assert fn.targetoptions["fastmath"] == _kernels.FASTMATH, name
        cache = getattr(fn, "_cache", None)
        assert type(cache).__name__ == "FunctionCache", f"{name} lacks cache=True"
    source = Path(_kernels.__file__).read_text(encoding="utf-8")
    assert set(re.findall(r"fastmath=(\w+)", source)) == {"FASTMATH"}
    assert len(re.findall(r"^FASTMATH\b.*=", source, re.M)) == 1
