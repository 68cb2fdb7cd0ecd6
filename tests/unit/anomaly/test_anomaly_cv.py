"""Cross-validation protocol, the in-fold search, the published-results reader and the field set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench import nab
from bench._cv import cross_validate, grid_chooser, margin_interval, raw_at_threshold
from bench._field import field_corpus
from bench._nab_score import PROFILES, score_corpus, sweep_series
from bench._search import GridSearch
from edge_config.anomaly import EnsembleSettings

T0 = np.datetime64("2026-01-01T00:00:00", "us")
STAMPS = T0 + np.arange(40) * np.timedelta64(60, "s")
# One window over rows 20..29 (probation: rows 0..5).
SWEEP = sweep_series(STAMPS, ((STAMPS[20], STAMPS[29]),))
EMPTY = sweep_series(STAMPS, ())
STANDARD = PROFILES["standard"]


def _scores(**rows: float) -> np.ndarray:
    out = np.zeros(40)
    for key, value in rows.items():
        out[int(key[1:])] = value
    return out


def test_raw_at_threshold_is_the_optimiser_s_raw_at_its_threshold() -> None:
    rng = np.random.default_rng(1)
    scores = [rng.random(40), rng.random(40), rng.random(40)]
    sweeps = [SWEEP, EMPTY, SWEEP]
    for name, cost in PROFILES.items():
        best = score_corpus(sweeps, scores, {name: cost})[name]
        raw, tp, fp, fn = raw_at_threshold(sweeps, scores, cost, best.threshold)
        assert (raw, tp, fp, fn) == pytest.approx((best.raw, best.tp, best.fp, best.fn))
    # Above every score: no detection, every window missed.
    assert raw_at_threshold(sweeps, scores, STANDARD, 2.0) == (-2.0, 0, 0, 2)


def test_each_fold_chooses_its_threshold_on_the_other_categories_only() -> None:
    # Category a: the window's detection scores 0.9, a false positive 0.5.
    # Category b: the detection scores 0.5, no false positive.
    # Held out a, b's optimum is any threshold <= 0.5: NAB takes the highest, 0.5, and a then pays
    # its false positive at row 10 (before the window: -0.11) for its detection at row 20 (+1).
    # Held out b, a's optimum is 0.9 (0.5 would add the FP): b's 0.5 detection is missed (-1).
    scores = [_scores(r20=0.9, r10=0.5), _scores(r20=0.5)]
    cv = cross_validate(["a", "b"], [SWEEP, SWEEP], grid_chooser([SWEEP, SWEEP], [scores]), {"standard": STANDARD})
    folds = {f.held_out: f for f in cv["standard"].folds}
    assert folds["a"].threshold == 0.5 and folds["a"].raw == pytest.approx(1.0 - 0.11)
    assert folds["b"].threshold == 0.9 and folds["b"].raw == pytest.approx(-1.0)
    # Pooled over the two windows: null -2, perfect 2.
    assert cv["standard"].normalised == pytest.approx(100.0 * (0.89 - 1.0 + 2.0) / 4.0)


def test_cv_keeps_each_series_raw_score_in_the_fold_that_held_it_out() -> None:
    rng = np.random.default_rng(3)
    scores = [rng.random(40) for _ in range(6)]
    sweeps = [SWEEP, EMPTY, SWEEP, SWEEP, EMPTY, SWEEP]
    categories = ["a", "a", "b", "b", "c", "c"]
    cv = cross_validate(categories, sweeps, grid_chooser(sweeps, [scores]))
    for res in cv.values():
        assert sum(res.series_raw) == pytest.approx(res.raw)
        for fold in res.folds:
            held = [i for i, c in enumerate(categories) if c == fold.held_out]
            assert sum(res.series_raw[i] for i in held) == pytest.approx(fold.raw)


def test_margin_interval_is_paired_and_resamples_within_categories() -> None:
    # Four categories of three series, one window each. "ours" finds every window; "theirs" misses the
    # window of one series per category: a margin of 2 raw points per missed window.
    categories = [c for c in "abcd" for _ in range(3)]
    sweeps = [SWEEP] * 12
    hit, miss = _scores(r20=0.9), _scores()
    ours = [hit] * 12
    theirs = [miss if i % 3 == 0 else hit for i in range(12)]
    cv_ours = cross_validate(categories, sweeps, grid_chooser(sweeps, [ours]), {"standard": STANDARD})["standard"]
    cv_theirs = cross_validate(categories, sweeps, grid_chooser(sweeps, [theirs]), {"standard": STANDARD})["standard"]
    margin, low, high = margin_interval(cv_ours, cv_theirs, categories, sweeps, STANDARD, resamples=500)
    assert margin == pytest.approx(100.0 * 4 * 2.0 / (2.0 * 12))
    # A resample can draw the missed series 0 to 3 times per category, never a negative margin.
    assert 0.0 <= low < margin < high <= 100.0
    assert margin_interval(cv_ours, cv_theirs, categories, sweeps, STANDARD, resamples=500) == (margin, low, high)
    # The same detector on both sides: the pairing cancels every draw.
    assert margin_interval(cv_ours, cv_ours, categories, sweeps, STANDARD, resamples=500) == (0.0, 0.0, 0.0)


def test_grid_chooser_takes_the_best_candidate_on_training_and_the_earlier_on_a_tie() -> None:
    good = [_scores(r20=0.9), _scores(r20=0.9)]
    bad = [_scores(r10=0.9), _scores(r10=0.9)]
    choose = grid_chooser([SWEEP, SWEEP], [bad, good, good])
    scores, threshold, raw, label = choose([0], STANDARD)
    assert label == "candidate 1" and threshold == 0.9 and raw == pytest.approx(1.0)
    assert scores is good


def test_grid_search_takes_the_training_optimum() -> None:
    # A fake detector whose alarm lands in the window of series 0 only when alarm_z is 3.5 and of
    # series 1 only when it is 2.5: the search must follow the training series.
    def run(cfg: EnsembleSettings) -> list[np.ndarray]:
        first = _scores(r20=0.9) if cfg.alarm_z == 3.5 else _scores(r10=0.9)
        second = _scores(r20=0.9) if cfg.alarm_z == 2.5 else _scores(r10=0.9)
        return [first, second]

    search = GridSearch([SWEEP, SWEEP], run, EnsembleSettings(), space={"alarm_z": (2.5, 3.0, 3.5)})
    scores, _, raw, label = search([0], STANDARD)
    assert label == "alarm_z=3.5" and search.last.alarm_z == 3.5 and raw == pytest.approx(1.0)
    # The scores handed back are the run's, every series (the held-out one too), exactly.
    for got, want in zip(scores, run(search.last), strict=True):
        assert np.array_equal(got, want)
    _, _, _, label = search([1], STANDARD)
    assert label == "alarm_z=2.5"
    # Where nothing gains, the first combination in list order stays, whatever the base holds.
    for base in (EnsembleSettings(), EnsembleSettings(alarm_z=3.5)):
        flat = GridSearch([SWEEP], lambda cfg: [_scores()], base, space={"alarm_z": (2.5, 3.5)})
        assert flat([0], STANDARD)[3] == "alarm_z=2.5"


def test_grid_search_finds_the_joint_optimum_a_one_at_a_time_climb_misses() -> None:
    # From the lowest values, moving one constant at a time only loses (0.25 -> -1): a climb stops
    # there. Only the two moved together find the best configuration (1.0): every combination runs.
    runs: list[tuple[float, float]] = []

    def run(cfg: EnsembleSettings) -> list[np.ndarray]:
        runs.append((cfg.alarm_z, cfg.short_span))
        if (cfg.alarm_z, cfg.short_span) == (2.5, 3.0):
            return [_scores(r29=0.9)]
        if (cfg.alarm_z, cfg.short_span) == (3.5, 8.0):
            return [_scores(r20=0.9)]
        return [_scores()]

    space: dict[str, tuple[float, ...]] = {"alarm_z": (2.5, 3.5), "short_span": (3.0, 8.0)}
    search = GridSearch([SWEEP], run, EnsembleSettings(), space=space)
    _, _, raw, label = search([0], STANDARD)
    assert label == "alarm_z=3.5 short_span=8" and raw == pytest.approx(1.0)
    search([0], PROFILES["reward_low_FP_rate"])
    assert sorted(runs) == [(2.5, 3.0), (2.5, 8.0), (3.5, 3.0), (3.5, 8.0)]  # each once, whatever is asked after


def test_grid_search_chooses_one_configuration_for_the_three_profiles() -> None:
    # alarm_z 3: an early detection and four false positives before the window (standard: 1 - 4 *
    # 0.11 = 0.56; low FP: 1 - 4 * 0.22 = 0.12). alarm_z 3.5: a detection on the window's last row
    # only (about 0.25 in every profile). Standard prefers 3, low FP alone would prefer 3.5.
    def run(cfg: EnsembleSettings) -> list[np.ndarray]:
        if cfg.alarm_z == 3.5:
            return [_scores(r29=0.9)]
        return [_scores(r20=0.9, r10=0.9, r11=0.9, r12=0.9, r13=0.9)]

    low_fp = PROFILES["reward_low_FP_rate"]
    search = GridSearch([SWEEP], run, EnsembleSettings(), space={"alarm_z": (3.0, 3.5)})
    _, threshold, raw, label = search([0], low_fp)
    assert label == "alarm_z=3" and threshold == 0.9 and raw == pytest.approx(1.0 - 4 * 0.22)
    alone = GridSearch([SWEEP], run, EnsembleSettings(), space={"alarm_z": (3.0, 3.5)}, select=low_fp)
    assert alone([0], low_fp)[3] == "alarm_z=3.5"


def test_field_corpus_is_seeded_labelled_and_irregular() -> None:
    one = field_corpus(seed=3, per_kind=1)
    again = field_corpus(seed=3, per_kind=1)
    other = field_corpus(seed=4, per_kind=1)
    assert [f.series.name for f in one] == [f"field/{k}_00.csv" for k in ("level", "load", "sparse", "flat", "walk")]
    for a, b in zip(one, again, strict=True):
        assert np.array_equal(a.series.values, b.series.values)
        assert np.array_equal(a.series.timestamps, b.series.timestamps)
    assert any(not np.array_equal(a.series.values, b.series.values) for a, b in zip(one, other, strict=True))
    for f in one:
        s = f.series
        seconds = np.diff(s.timestamps.astype(np.int64)) / 1e6
        assert (seconds > 0).all()  # strictly increasing, whole seconds
        assert seconds.max() >= 3600.0  # at least one gap of an hour or more
        sweep = sweep_series(s.timestamps, s.windows)  # every window limit is a row
        assert sweep.n_windows == len(f.anomalies) >= 1
        for lo, hi in f.stuck_spans:
            assert hi - lo >= 2 and np.all(s.values[lo:hi] == s.values[lo])


def _tiny_nab(root: Path, categories: tuple[str, ...] = ("alpha", "beta"), flagged: float = 0.9) -> None:
    """Two series per category, a spike in a window in each; the fake published detector scores it ``flagged``
    in the categories after the first two (0.9 in those)."""
    rng = np.random.default_rng(5)
    stamps = T0 + np.arange(400) * np.timedelta64(300, "s")
    labels = {}
    for category in categories:
        (root / "data" / category).mkdir(parents=True)
        for k in range(2):
            values = rng.normal(size=400)
            values[300 + 10 * k] += 40.0
            text = ["timestamp,value"] + [
                f"{str(ts).replace('T', ' ')[:19]},{v}" for ts, v in zip(stamps, values, strict=True)
            ]
            name = f"{category}/s{k}.csv"
            (root / "data" / name).write_text("\n".join(text) + "\n")
            labels[name] = [[str(stamps[290]).replace("T", " "), str(stamps[330]).replace("T", " ")]]
            published = root / "results" / "numenta" / category
            published.mkdir(parents=True, exist_ok=True)
            fake = np.zeros(400)
            fake[300 + 10 * k] = 0.9 if category in categories[:2] else flagged
            rows = ["timestamp,value,anomaly_score"] + [
                f"{str(ts).replace('T', ' ')[:19]},{v},{p}" for ts, v, p in zip(stamps, values, fake, strict=True)
            ]
            (published / f"numenta_s{k}.csv").write_text("\n".join(rows) + "\n")
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))


def test_bench_cv_prints_one_line_per_detector_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "nab"
    _tiny_nab(root)
    assert nab.main([str(root), "--cv", "--field-per-kind", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ("ensemble (ours)", "windowed_gaussian (ours)", "HTM (published)", "margin over HTM", "field ensemble"):
        assert re.search(rf"^{re.escape(name)} ", printed, re.M), printed
    last = printed.strip().splitlines()[-1]
    pattern = (
        r"cv_standard: (-?[\d.]+) cv_low_fp: (-?[\d.]+) cv_low_fn: (-?[\d.]+) "
        r"best_published_cv: (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) points/s: \d+"
    )
    match = re.fullmatch(pattern, last)
    assert match is not None, last
    # The fake published detector flags each spike and nothing else, so every fold keeps 0.9 and
    # detects all four windows without a false positive: its CV score is its in-sample score.
    rows = sorted((root / "data").glob("*/*.csv"))
    assert len(rows) == 4
    in_sample = re.search(r"^HTM \(published\) .*\|\s+(-?[\d.]+)", printed, re.M)
    assert in_sample is not None
    assert float(match.group(4)) == pytest.approx(float(in_sample.group(1))) and float(match.group(4)) > 80.0


def test_bench_cv_scores_held_out_series_with_what_the_scored_folder_chose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, full = tmp_path / "nab", tmp_path / "full"
    _tiny_nab(root)
    _tiny_nab(full, ("alpha", "beta", "gamma"), flagged=0.6)
    assert nab.main([str(root), "--cv", "--field-per-kind", "1", "--holdout", str(full)]) == 0
    printed = capsys.readouterr().out
    # Only gamma is new: alpha and beta of the full folder are the scored folder's series.
    assert re.search(r"^# held-out NAB series .*: 2 series, 800 points, 2 windows, categories gamma;", printed, re.M)
    assert re.search(r"^held-out ensemble ", printed, re.M), printed
    # The fake published detector's threshold chosen on alpha and beta (0.9) misses gamma's two
    # spikes (scored 0.6): NAB's null score, 0, where the threshold optimal on gamma (0.6) finds both.
    row = re.search(r"^held-out HTM\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+\|\s+(-?[\d.]+)", printed, re.M)
    assert row is not None, printed
    assert float(row.group(1)) == pytest.approx(0.0) and float(row.group(4)) > 80.0
