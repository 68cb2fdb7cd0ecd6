"""The fault campaign, small: a few SIGKILLs under load and a broker restart, in the suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, _mosquitto_bin


def test_a_small_fault_campaign_loses_nothing_and_sees_no_takeover() -> None:
    if _mosquitto_bin() is None:
        pytest.skip("mosquitto is not installed (scripts/test installs Debian's package)")
    cmd = [
        sys.executable,
        "-m",
        "bench.faults",
        "--kills",
        "3",
        "--broker-restarts",
        "1",
        "--steady",
        "500",
        "--no-disk",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"kills: (\d+) lost_committed: (\d+) broker_restarts: (\d+) takeovers_after_recovery: (\d+) "
        r"steady_loss_pct: ([\d.]+) fd_growth: (-?\d+) rss_growth_mb: (-?[\d.]+) disk_full_survived: (\w+)",
        last,
    )
    assert m, last
    kills, lost, restarts, takeovers, loss, fds, _rss, _disk = m.groups()
    assert (kills, lost, restarts, takeovers) == ("3", "0", "1", "0"), last
    assert float(loss) < 0.1 and int(fds) <= 0, last
