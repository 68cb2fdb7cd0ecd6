"""The CDnet evaluator's scoring on a hand-made folder of the same layout, and the bench output."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import cdnet
from bench._cdnet_eval import Counts, evaluate, read_temporal_roi


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
    assert names == ["gateway", "mog2", "knn", "knn-tuned", "frigate-style"]
    pattern = re.compile(r"^\S+ F-measure: \d\.\d{4} precision: \d\.\d{4} recall: \d\.\d{4}")
    assert all(pattern.match(ln) for ln in lines)


def test_bench_rejects_a_folder_of_another_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cdnet.main([str(tmp_path)]) == 2
    assert "not a CDnet-layout folder" in capsys.readouterr().err
