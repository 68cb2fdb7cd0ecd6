"""The CDnet evaluator's scoring on a hand-made folder of the same layout, and the bench output."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import numpy.testing as npt
import pytest

from bench import cdnet
from bench._cdnet_eval import (
    SHADE_CROSSING,
    SHADE_PERIOD,
    Counts,
    LayoutError,
    evaluate,
    jitter_walk,
    read_roi,
    read_temporal_roi,
    shade_frame,
    shift_frame,
)

OURS_AND_OPENCV = ["gateway", "mog2", "knn", "knn-tuned", "frigate-style", "gateway-stabilised"]


def _folder(tmp_path: Path, n: int = 6, first: int = 3) -> Path:
    (tmp_path / "input").mkdir()
    (tmp_path / "groundtruth").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "input" / f"in{i:06d}.jpg"), img)
        gt = np.zeros((24, 32), np.uint8)
        gt[:, :8] = 255  # positive
        gt[:, 8:12] = 170  # unknown: skipped
        gt[:, 12:14] = 50  # shadow: negative
        gt[0, :] = 85  # outside ROI: skipped
        cv2.imwrite(str(tmp_path / "groundtruth" / f"gt{i:06d}.png"), gt)
    roi = np.full((24, 32), 255, np.uint8)
    roi[:, 30:] = 0
    cv2.imwrite(str(tmp_path / "ROI.bmp"), roi)
    (tmp_path / "temporalROI.txt").write_text(f"{first} {n}\n")
    return tmp_path


def test_counts_follow_cdnet_rules(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert read_temporal_roi(folder) == (3, 6)
    pred = np.zeros((24, 32), bool)
    pred[:, 4:16] = True  # half the positives, all unknown, shadow and some background
    pred[:, 31] = True  # outside ROI.bmp: not scored
    counts = evaluate(folder, {"fixed": lambda _bgr, _t: pred})
    c = counts["fixed"]
    rows = 23  # row 0 is outside ROI
    frames = 4  # frames 3..6
    assert c.frames == 6  # every frame is run, only the temporal ROI scored
    assert c.tp == 4 * rows * frames
    assert c.fn == 4 * rows * frames
    assert c.fp == (2 + 2) * rows * frames  # shadow columns 12-13 and background 14-15
    assert c.precision == pytest.approx(0.5)
    assert c.f_measure == pytest.approx(0.5)


def test_empty_counts_are_zero() -> None:
    c = Counts()
    assert (c.precision, c.recall, c.f_measure) == (0.0, 0.0, 0.0)


def test_bench_prints_one_line_per_method_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, n=4, first=2)
    assert cdnet.main([str(folder)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("#")]
    names = [ln.split()[0] for ln in lines]
    assert names[:6] == OURS_AND_OPENCV
    assert all(n.startswith("bgs-") for n in names[6:])  # bgslibrary's, when pybgs is installed
    pattern = re.compile(
        r"^\S+ F-measure: \d\.\d{4} precision: \d\.\d{4} recall: \d\.\d{4} .* "
        r"false_alarm: (\d\.\d{3}|n/a) miss: (\d\.\d{3}|n/a)$"
    )
    assert all(pattern.match(ln) for ln in lines)


def test_bench_rejects_a_folder_of_another_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cdnet.main([str(tmp_path)]) == 2
    assert "not a CDnet-layout folder" in capsys.readouterr().err


def test_jitter_walk_is_seeded_bounded_and_moves() -> None:
    walk = [next(w) for w in [jitter_walk(3, 5)] for _ in range(200)]
    again = jitter_walk(3, 5)
    assert walk == [next(again) for _ in range(200)]
    assert all(abs(dx) <= 3 and abs(dy) <= 3 for dx, dy in walk)
    assert len(set(walk)) > 10  # it does shake
    assert walk != [next(w) for w in [jitter_walk(3, 6)] for _ in range(200)]


@pytest.mark.parametrize(("dx", "dy"), [(2, -1), (-3, 3), (0, 0)])
def test_shift_moves_frame_ground_truth_and_roi_together(dx: int, dy: int) -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gt = np.zeros((20, 30), np.uint8)
    gt[8:12, 10:15] = 255
    roi = np.full((20, 30), 255, np.uint8)
    out, gt2, roi2 = shift_frame(bgr, gt, roi, dx, dy)
    assert gt2 is not None and roi2 is not None
    # inside the frame every pixel moved by the same (dx, dy), image and labels alike
    npt.assert_array_equal(out[max(0, dy) : 20 + min(0, dy), max(0, dx) : 30 + min(0, dx)],
                           bgr[max(0, -dy) : 20 - max(0, dy), max(0, -dx) : 30 - max(0, dx)])  # fmt: skip
    assert np.argwhere(gt2 == 255).min(axis=0).tolist() == [8 + dy, 10 + dx]
    assert np.count_nonzero(gt2 == 255) == 20
    # the exposed border is unscored: ground truth 85 (outside ROI) and ROI 0, and nothing else is
    border = np.ones((20, 30), bool)
    border[max(0, dy) : 20 + min(0, dy), max(0, dx) : 30 + min(0, dx)] = False
    assert np.all(gt2[border] == 85) and np.all(roi2[border] == 0)
    assert np.all(gt2[~border] != 85) and np.all(roi2[~border] == 255)


def test_jittered_evaluation_scores_a_shaken_perfect_detector_perfectly(tmp_path: Path) -> None:
    # a "detector" that returns the ground truth of the frame it is given, found by the positive
    # columns' colour: perfect when frame and ground truth move together, border excluded
    folder = _folder(tmp_path, n=8, first=1)
    for i in range(1, 9):
        img = np.zeros((24, 32, 3), np.uint8)
        img[:, :8] = 255
        cv2.imwrite(str(folder / "input" / f"in{i:06d}.jpg"), img)

    def oracle(bgr: np.ndarray, _t: float) -> np.ndarray:
        mask: np.ndarray = bgr[:, :, 0] > 128
        return mask

    plain = evaluate(folder, {"oracle": oracle})["oracle"]
    shaken = evaluate(folder, {"oracle": oracle}, jitter=(3, 1))["oracle"]
    assert plain.f_measure == pytest.approx(1.0)
    assert shaken.f_measure == pytest.approx(1.0)
    assert shaken.tp + shaken.fn < plain.tp + plain.fn  # borders left the scoring


def test_bench_jitter_option_says_it_is_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, n=4, first=2)
    assert cdnet.main([str(folder), "--jitter", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "synthetic stress test" in out and "up to 2 px (seed 3)" in out
    names = [ln.split()[0] for ln in out.splitlines() if not ln.startswith("#")]
    assert names[:6] == OURS_AND_OPENCV


def test_shade_sweeps_a_soft_band_across_and_keeps_the_hue() -> None:
    bgr = np.full((10, 100, 3), (40, 120, 200), np.uint8)
    mid = shade_frame(bgr, SHADE_CROSSING // 2, 0.3)  # the band's middle at the frame's centre
    gain = mid[..., 2].astype(float) / 200
    assert gain[:, 50].min() == pytest.approx(0.7, abs=0.01)  # full depth in the middle
    assert gain[:, 0].min() == pytest.approx(1.0) and gain[:, 99].min() == pytest.approx(1.0)
    assert np.all(np.diff(gain[0, :50]) <= 1e-9)  # easing in, no hard edge
    assert np.allclose(mid[..., 0] / 40, gain, atol=0.02)  # every channel alike: the hue stays
    assert np.array_equal(shade_frame(bgr, SHADE_CROSSING, 0.3), bgr)  # between crossings: none
    assert np.array_equal(shade_frame(bgr, SHADE_PERIOD + 5, 0.3), shade_frame(bgr, 5, 0.3))


def test_bench_shade_option_says_it_is_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, n=4, first=2)
    assert cdnet.main([str(folder), "--shade", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "synthetic stress test" in out and "cloud shade 30% darker" in out
    with pytest.raises(SystemExit):
        cdnet.main([str(folder), "--shade", "1.5"])


def test_bench_over_many_folders_ends_with_the_means_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / "set" / name).mkdir(parents=True)
        _folder(tmp_path / "set" / name, n=4, first=2)
    # a folder of sequences stands for all of them
    assert cdnet.main([str(tmp_path / "set"), "--methods", "gateway,mog2,knn"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(ln.startswith("gateway F-measure") for ln in out) == 2
    assert any(ln.startswith("# set/a ") for ln in out) and any(ln.startswith("# set/b ") for ln in out)
    means = [ln for ln in out if ln.startswith("mean ")]
    assert [ln.split()[1] for ln in means] == ["gateway", "mog2", "knn"]
    assert re.fullmatch(
        r"mean_F gateway: \d\.\d{4} best_peer: (mog2|knn) \d\.\d{4} mog2: \d\.\d{4} sequences: 2", out[-1]
    )


def test_bench_rejects_unknown_methods(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cdnet.main([str(_folder(tmp_path)), "--methods", "gateway,nope"])


def test_a_wrong_size_roi_bmp_falls_back_to_roi_jpg(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cv2.imwrite(str(folder / "ROI.bmp"), np.full((24, 30), 255, np.uint8))  # the wrong width
    roi = np.full((24, 32), 255, np.uint8)
    roi[:, 30:] = 0
    cv2.imwrite(str(folder / "ROI.jpg"), roi)
    npt.assert_array_equal(read_roi(folder, (24, 32)), roi)
    pred = np.zeros((24, 32), bool)
    pred[:, 31] = True  # outside the ROI: not scored
    assert evaluate(folder, {"fixed": lambda _bgr, _t: pred})["fixed"].fp == 0


def test_a_folder_whose_roi_fits_no_frame_is_left_out_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = _folder(tmp_path / "good")
    bad = _folder(tmp_path / "bad")
    cv2.imwrite(str(bad / "ROI.bmp"), np.full((24, 30), 255, np.uint8))
    (bad / "ROI.jpg").write_bytes(b"not an image")
    with pytest.raises(LayoutError, match=r"no ROI file fits the 32x24 frames \(ROI.bmp is 30x24; ROI.jpg"):
        read_roi(bad, (24, 32))
    assert cdnet.main([str(bad), str(good), "--methods", "gateway"]) == 1
    captured = capsys.readouterr()
    assert "no ROI file fits" in captured.err and "left out" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out.splitlines()[-1].endswith("sequences: 1")


def test_frame_level_false_alarms_and_misses(tmp_path: Path) -> None:
    folder = _folder(tmp_path, n=6, first=1)
    for i in (1, 2, 3):  # three frames without any object
        gt = np.zeros((24, 32), np.uint8)
        cv2.imwrite(str(folder / "groundtruth" / f"gt{i:06d}.png"), gt)
    blob = np.zeros((24, 32), bool)
    blob[10:16, 20:26] = True  # 36 pixels, away from the objects of frames 4 to 6

    def method(_bgr: np.ndarray, t: float) -> np.ndarray:
        return blob if round(t * 25) in (1, 4) else np.zeros((24, 32), bool)

    c = evaluate(folder, {"m": method})["m"]
    assert (c.quiet_frames, c.false_alarm_frames) == (3, 1)  # frame 1
    assert (c.object_frames, c.miss_frames) == (3, 3)  # frame 4's box does not touch the object
    assert c.false_alarm_rate == pytest.approx(1 / 3) and c.miss_rate == pytest.approx(1.0)


def test_jobs_score_folders_in_workers_with_the_same_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _folder(tmp_path / name, n=5, first=2)
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--methods", "gateway,mog2"]

    def figures(out: str) -> list[str]:  # every line without the timings
        return [re.sub(r"\(.*ms/frame.*\)|ms/frame: \S+", "", ln) for ln in out.splitlines()]

    assert cdnet.main(argv) == 0
    one = figures(capsys.readouterr().out)
    assert cdnet.main([*argv, "--jobs", "2"]) == 0
    assert figures(capsys.readouterr().out) == one
