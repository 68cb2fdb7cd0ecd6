"""Fixtures of the GB/T 28181 tests: an outbox with the channel's consumer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.metrics import Metrics
from gateway.outbox import Outbox
from tests.integration.cameras.conftest import scene_clip  # noqa: F401  (the demo camera tests' clip, as a fixture here)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(
        tmp_path / "outbox.sqlite3",
        budget_bytes=1 << 26,
        keep_delivered_s=3600,
        commit_interval_s=0,
        consumers=["gb28181:county"],
        metrics=Metrics(),
    )
    ob.open()
    yield ob
    ob.close()
