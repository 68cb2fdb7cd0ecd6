"""The NAB v1.1 scorer on hand-made cases, every expected value worked out by hand below.

Common case: 20 rows one minute apart, one window over rows 10..14 (width 5).
Probation: floor(0.15 * 20) = 3 rows (0, 1, 2) are never scored.
scaled_sigmoid(y) = 2 / (1 + e^(5y)) - 1, so max_tp = scaled_sigmoid(-1) = 0.9866143.
In the window, row j has position -(14 - j + 1) / 5 and is worth scaled_sigmoid(pos) / max_tp:
    row 10: pos -1.0 -> 0.9866143 / 0.9866143 = 1.0
    row 12: pos -0.6 -> 0.9051483 / 0.9866143 = 0.9174287
    row 14: pos -0.2 -> 0.4621172 / 0.9866143 = 0.4683868
Before the window an FP is worth -1 (times fp weight). After it, row i is at |14 - i| / (5 - 1):
    row 15: 0.25 -> 2 / (1 + e^1.25) - 1 = -0.5545997
    row 16: 0.50 -> -0.8482836,  row 17: 0.75 -> -0.9540453
    row 18: 1.00 -> -0.9866143,  row 19: 1.25 -> -0.9961465
Profiles (tp, fp, fn): standard (1, 0.11, 1); low FP (1, 0.22, 1); low FN (1, 0.11, 2).
With one window: null = -fn, perfect = tp, normalised = 100 (raw + fn) / (tp + fn).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench import nab
from bench._nab_score import (
    probation_length,
    scaled_sigmoid,
    score_corpus,
    sweep_series,
)

T0 = np.datetime64("2026-01-01T00:00:00", "us")
STAMPS = T0 + np.arange(20) * np.timedelta64(60, "s")
WINDOW = ((STAMPS[10], STAMPS[14]),)
SWEEP = sweep_series(STAMPS, WINDOW)


def _scores(**rows: float) -> np.ndarray:
    out = np.zeros(20)
    for key, value in rows.items():
        out[int(key[1:])] = value
    return out


def test_scaled_sigmoid_reference_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661430)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828364)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661430)
    assert scaled_sigmoid(2.99) == pytest.approx(-0.9999994, abs=1e-6)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_length(20) == 3  # floor(3.0)
    assert probation_length(1243) == 186  # floor(186.45)
    assert probation_length(4032) == 604  # floor(604.8)
    assert probation_length(10_000) == 750  # 1500 capped at 0.15 * 5000


def test_sweep_values_by_hand() -> None:
    assert SWEEP.n_windows == 1
    assert list(SWEEP.window[:3]) == [-2, -2, -2]  # probationary
    assert list(SWEEP.window[3:10]) == [-1] * 7
    assert list(SWEEP.window[10:15]) == [0] * 5
    assert list(SWEEP.window[15:]) == [-1] * 5
    hand = {
        3: -1.0,
        9: -1.0,
        10: 1.0,
        12: 0.9174287,
        14: 0.4683868,
        15: -0.5545997,
        16: -0.8482836,
        17: -0.9540453,
        18: -0.9866143,
        19: -0.9961465,
    }
    for row, value in hand.items():
        assert SWEEP.unweighted[row] == pytest.approx(value, abs=1e-7), row


def test_one_detection_mid_window() -> None:
    # Only row 12 fires. Best threshold is 1.0: raw = 0.9174287 (one TP, no FP).
    # standard: 100 * (0.9174287 + 1) / 2 = 95.871435; low FN: 100 * (0.9174287 + 2) / 3 = 97.247623
    res = score_corpus([SWEEP], [_scores(r12=1.0)])
    assert res["standard"].threshold == 1.0
    assert res["standard"].raw == pytest.approx(0.9174287)
    assert res["standard"].normalised == pytest.approx(95.871435)
    assert res["reward_low_FP_rate"].normalised == pytest.approx(95.871435)
    assert res["reward_low_FN_rate"].normalised == pytest.approx(97.247623)
    assert (res["standard"].tp, res["standard"].fp, res["standard"].fn) == (1, 0, 0)


def test_false_positive_before_window_is_worth_minus_fp_weight() -> None:
    # Row 5 (0.9) is an FP before any window, row 12 (0.8) a TP. Threshold 0.8 takes both:
    #   standard: 0.9174287 - 0.11 = 0.8074287 -> 100 * 1.8074287 / 2 = 90.371435
    #   low FP:   0.9174287 - 0.22 = 0.6974287 -> 100 * 1.6974287 / 2 = 84.871435
    #   low FN:   0.8074287, null -2, perfect 1 -> 100 * 2.8074287 / 3 = 93.580957
    # (threshold 0.9 alone would give -1 - 0.11: worse than taking no detection at all.)
    res = score_corpus([SWEEP], [_scores(r5=0.9, r12=0.8)])
    assert res["standard"].threshold == 0.8
    assert res["standard"].normalised == pytest.approx(90.371435)
    assert res["reward_low_FP_rate"].normalised == pytest.approx(84.871435)
    assert res["reward_low_FN_rate"].normalised == pytest.approx(93.580957)
    assert res["standard"].fp == 1


def test_probationary_detections_are_free() -> None:
    # Row 2 is probationary: same result as row 12 alone.
    res = score_corpus([SWEEP], [_scores(r2=1.0, r12=1.0)])
    assert res["standard"].raw == pytest.approx(0.9174287)
    assert res["standard"].fp == 0


def test_window_counts_once_with_its_earliest_detection() -> None:
    # Rows 12 and 14 fire: the window is worth row 12's 0.9174287, once.
    res = score_corpus([SWEEP], [_scores(r12=0.7, r14=0.7)])
    assert res["standard"].raw == pytest.approx(0.9174287)
    assert res["standard"].tp == 1


# A longer series for cases where "fire everywhere" must lose: 100 rows, window rows 80..84,
# probation floor(15) = 15 rows. Firing everywhere costs at least 65 * 0.11 = 7.15 for rows
# 15..79 alone, far worse than missing the window (-1).
STAMPS_100 = T0 + np.arange(100) * np.timedelta64(60, "s")
SWEEP_100 = sweep_series(STAMPS_100, ((STAMPS_100[80], STAMPS_100[84]),))


def test_a_late_detection_is_not_worth_an_fp_after_the_window() -> None:
    # Only row 85 fires, just after the window (|84 - 85| / 4 = 0.25 -> -0.5545997):
    # firing gives -1 + 0.11 * -0.5545997 = -1.0610060 < -1, so the best threshold is "never"
    # (+inf) and the score is the null score, 0.
    scores = np.zeros(100)
    scores[85] = 1.0
    res = score_corpus([SWEEP_100], [scores])
    assert res["standard"].threshold == np.inf
    assert res["standard"].raw == pytest.approx(-1.0)
    assert res["standard"].normalised == pytest.approx(0.0)


def test_fp_just_after_window_costs_less_than_far_after() -> None:
    # Rows 10 (TP, 1.0) and 15 or 19 (FP) fire together at threshold 0.5:
    #   row 15: 1.0 + 0.11 * -0.5545997 = 0.9389940
    #   row 19: 1.0 + 0.11 * -0.9961465 = 0.8904239
    near = score_corpus([SWEEP], [_scores(r10=0.5, r15=0.5)])["standard"].raw
    far = score_corpus([SWEEP], [_scores(r10=0.5, r19=0.5)])["standard"].raw
    assert near == pytest.approx(0.9389940)
    assert far == pytest.approx(0.8904239)


def test_perfect_and_null_detectors() -> None:
    assert score_corpus([SWEEP], [_scores(r10=1.0)])["standard"].normalised == pytest.approx(100.0)
    for profile in score_corpus([SWEEP_100], [np.zeros(100)]).values():
        assert profile.normalised == pytest.approx(0.0)


def test_firing_everywhere_can_beat_null_on_a_short_series() -> None:
    # All-zero scores on the 20-row series: threshold 0 fires on every scored row.
    # Window: row 10 -> +1.0. FPs: rows 3..9 -> 7 * -0.11 = -0.77; rows 15..19 ->
    # 0.11 * -(0.5545997 + 0.8482836 + 0.9540453 + 0.9866143 + 0.9961465) = -0.4773658.
    # raw = 1 - 0.77 - 0.4773658 = -0.2473658 > -1 (never firing): 100 * 0.7526342 / 2 = 37.63171
    res = score_corpus([SWEEP], [np.zeros(20)])["standard"]
    assert res.threshold == 0.0
    assert res.raw == pytest.approx(-0.2473658)
    assert res.normalised == pytest.approx(37.63171)


def test_threshold_is_shared_across_the_corpus() -> None:
    # Series A: TP at row 12 with score 0.6. Series B (no window): FP at row 5 with score 0.9.
    # Threshold 0.6 takes both: 0.9174287 - 0.11 = 0.8074287; threshold 0.9 takes only the FP:
    # -1 - 0.11. Best: 0.6, corpus raw 0.8074287 -> standard 100 * 1.8074287 / 2 = 90.371435.
    # Per-file thresholds would have given 95.87 instead: one threshold must be used.
    sweep_b = sweep_series(STAMPS, ())
    res = score_corpus([SWEEP, sweep_b], [_scores(r12=0.6), _scores(r5=0.9)])
    assert res["standard"].threshold == 0.6
    assert res["standard"].normalised == pytest.approx(90.371435)


def test_each_profile_chooses_its_own_threshold() -> None:
    # As NAB's optimizer does, the threshold is swept once per profile (its own cost matrix).
    # Series A (20 rows): row 14 (TP worth 0.4683868) and FPs at rows 3..5 score 0.9; row 12
    # (TP worth 0.9174287) and FPs at rows 6..9 score 0.5. Series B (100 rows, window 80..84):
    # row 80 (TP worth 1.0) and 20 FPs before the window (rows 20..39) score 0.2. Raw scores:
    #   threshold     standard (fp .11)        low FP (fp .22)          low FN (fn 2)
    #   never         -2                       -2                       -4
    #   0.9   0.4683868 - 3fp - fn: -0.8616132  -1.1916132               -1.8616132
    #   0.5   0.9174287 - 7fp - fn: -0.8525713  -1.6225713               -1.8525713
    #   0.2   1.9174287 - 27fp:     -1.0525713  -4.0225713               -1.0525713
    # standard takes 0.5: 100 * (2 - 0.8525713) / 4 = 28.685718; low FP takes 0.9:
    # 100 * (2 - 1.1916132) / 4 = 20.20967; low FN takes 0.2: 100 * (4 - 1.0525713) / 6 = 49.123812.
    series_a = _scores(r3=0.9, r4=0.9, r5=0.9, r14=0.9, r6=0.5, r7=0.5, r8=0.5, r9=0.5, r12=0.5)
    series_b = np.zeros(100)
    series_b[20:40] = 0.2
    series_b[80] = 0.2
    res = score_corpus([SWEEP, SWEEP_100], [series_a, series_b])
    assert res["standard"].threshold == 0.5
    assert res["standard"].normalised == pytest.approx(28.685718)
    assert res["reward_low_FP_rate"].threshold == 0.9
    assert res["reward_low_FP_rate"].normalised == pytest.approx(20.20967)
    assert res["reward_low_FN_rate"].threshold == 0.2
    assert res["reward_low_FN_rate"].normalised == pytest.approx(49.123812)
    assert (res["reward_low_FN_rate"].tp, res["reward_low_FN_rate"].fp) == (2, 27)


def test_window_limits_must_be_row_timestamps() -> None:
    bad = ((STAMPS[10] + np.timedelta64(1, "s"), STAMPS[14]),)
    with pytest.raises(ValueError, match="not a row timestamp"):
        sweep_series(STAMPS, bad)


def test_bench_runs_on_a_tiny_nab_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nab"
    (root / "data" / "demo").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(5)
    values = rng.normal(size=300)
    values[250] = 40.0
    stamps = T0 + np.arange(300) * np.timedelta64(300, "s")
    text = ["timestamp,value"] + [f"{str(ts).replace('T', ' ')[:19]},{v}" for ts, v in zip(stamps, values, strict=True)]
    (root / "data" / "demo" / "spike.csv").write_text("\n".join(text) + "\n")
    window = [[str(stamps[240]).replace("T", " "), str(stamps[260]).replace("T", " ")]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps({"demo/spike.csv": window}))
    out = tmp_path / "results"
    assert nab.main([str(root), "--out", str(out), "--detector", "windowed_gaussian"]) == 0
    printed = capsys.readouterr().out
    line = re.search(
        r"^windowed_gaussian standard: (-?[\d.]+)  reward_low_FP: (-?[\d.]+)  "
        r"reward_low_FN: (-?[\d.]+)  points/s: \d+$",
        printed,
        re.M,
    )
    assert line is not None, printed
    # The spike at row 250 is the highest score after probation: threshold at it, one TP at
    # position -(260 - 250 + 1) / 21, no FP -> well above 0.
    assert float(line.group(1)) > 80.0
    result = out / "windowed_gaussian" / "demo" / "windowed_gaussian_spike.csv"
    rows = result.read_text().splitlines()
    assert rows[0] == "timestamp,value,anomaly_score"
    assert len(rows) == 301


def test_bench_reports_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert nab.main([str(tmp_path / "absent")]) == 2
    assert "no data/ folder" in capsys.readouterr().err
