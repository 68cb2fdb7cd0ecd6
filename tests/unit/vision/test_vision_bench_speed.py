"""bench.motion_speed runs end to end and prints its summary line (times are never asserted)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import motion_speed


def test_speed_bench_prints_table_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an empty --data folder yields no frames from disk; point it at a missing folder instead so
    # that the synthetic scene is used and the test never depends on ../shared/data
    assert motion_speed.main(["--data", str(tmp_path / "absent"), "--frames", "3", "--passes", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    sizes = [ln.split()[0] for ln in out if re.match(r"^\d+x\d+", ln)]
    assert sizes == ["320x180", "640x360", "1280x720", "1920x1080"]
    assert any(re.match(r"^min_ratio_vs_opencv: \d+\.\d\d  ratio_vs_mog2: \d+\.\d\d$", ln) for ln in out)
    # the issue-13 line, last: SuBSENSE's ratio when pybgs is installed, else n/a
    assert re.match(r"^min_ratio_vs_mog2: \d+\.\d\d ratio_vs_subsense: (\d+|n/a)$", out[-1])


def test_speed_bench_times_the_stabilised_detector_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data", str(tmp_path / "absent"), "--frames", "3", "--passes", "1", "--stabilise"]
    assert motion_speed.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "shake compensation" in out[0]
    assert re.match(r"^min_ratio_vs_mog2: \d+\.\d\d ratio_vs_subsense: (\d+|n/a)$", out[-1])
