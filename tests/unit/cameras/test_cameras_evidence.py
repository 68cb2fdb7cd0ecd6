"""The evidence store: atomic files under a byte budget, strict ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.evidence import EvidenceStore


def test_put_get_and_reopen(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, budget_bytes=10_000)
    ev = store.put(b"\xff\xd8jpeg-bytes", "image/jpeg", "tamper at the gate")
    assert ev.media_type == "image/jpeg"
    assert ev.description == "tamper at the gate"
    assert store.get(ev.ref) == (b"\xff\xd8jpeg-bytes", "image/jpeg")
    again = EvidenceStore(tmp_path, budget_bytes=10_000)
    assert again.get(ev.ref) == (b"\xff\xd8jpeg-bytes", "image/jpeg")
    assert again.total_bytes == len(b"\xff\xd8jpeg-bytes")


def test_oldest_evicted_over_budget(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, budget_bytes=2500)
    refs = [store.put(bytes([i]) * 1000).ref for i in range(4)]
    assert store.get(refs[0]) is None
    assert store.get(refs[1]) is None
    assert store.get(refs[2]) is not None
    assert store.get(refs[3]) is not None
    assert store.total_bytes <= 2500
    assert len(list(tmp_path.glob("*.jpg"))) == 2


@pytest.mark.parametrize("ref", ["../etc/passwd", "", "0" * 16, "x" * 29, "0000000000000000-00000000000g"])
def test_malformed_refs_never_touch_the_disk(tmp_path: Path, ref: str) -> None:
    assert EvidenceStore(tmp_path).get(ref) is None


def test_rejects_unknown_media_and_oversize(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, budget_bytes=100)
    with pytest.raises(ValueError, match="media type"):
        store.put(b"x", "video/mp4")
    with pytest.raises(ValueError, match="exceeds the whole budget"):
        store.put(b"x" * 101)


def test_leftover_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "0000000000000001-000000000000.tmp").write_bytes(b"half")
    EvidenceStore(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
