"""`edge-gateway demo` as a newcomer stops it: Ctrl-C or SIGTERM, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "INFO", "demo", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("  page:"):
                break
        else:
            pytest.fail(f"the demo ended before it ran: {proc.stderr.read() if proc.stderr else ''}")
        assert [p.name.startswith("edge-gateway-demo-") for p in tmp_path.iterdir()] == [True]
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    # Stopped, not killed: the gateway went through its own stop (intake off, outbox flushed).
    assert "stopping: intake off, flushing the outbox" in err, err
    # The temporary site folder, with the API token in it, is gone.
    assert list(tmp_path.iterdir()) == []
