"""Evidence snapshots (JPEG) kept in the state directory under a byte budget.

Files are written atomically (temp file, fsync, rename) so a power cut leaves either the whole
picture or none. When the budget is exceeded the oldest files go first. Ids are time-ordered
random hex strings, checked strictly on the way in so a request can never name a path.

All methods do blocking file I/O: call them through ``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from pathlib import Path

from edge_core.signals import Evidence

__all__ = ["EvidenceStore"]

_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "application/json": ".json"}
_MEDIA = {v: k for k, v in _EXT.items()}
_REF = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{12}$")


class EvidenceStore:
    """JPEG (and other small media) files in ``directory``, at most ``budget_bytes`` in total."""

    def __init__(self, directory: str | Path, budget_bytes: int = 256 * 1024 * 1024) -> None:
        if budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive")
        self.directory = Path(directory)
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        self._files: dict[str, tuple[Path, int]] = {}
        for path in sorted(self.directory.iterdir()):
            ref = path.stem
            if path.suffix in _MEDIA and _REF.match(ref):
                self._files[ref] = (path, path.stat().st_size)
        self._total = sum(size for _, size in self._files.values())

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._files)

    def put(self, data: bytes, media_type: str = "image/jpeg", description: str = "") -> Evidence:
        """Store ``data``; returns the :class:`Evidence` that links it. Evicts the oldest over budget."""
        ext = _EXT.get(media_type)
        if ext is None:
            raise ValueError(f"unsupported evidence media type {media_type!r}; use one of {sorted(_EXT)}")
        if len(data) > self.budget_bytes:
            raise ValueError(f"evidence of {len(data)} bytes exceeds the whole budget ({self.budget_bytes})")
        ref = f"{time.time_ns():016x}-{secrets.token_hex(6)}"
        path = self.directory / f"{ref}{ext}"
        tmp = self.directory / f"{ref}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            # A full disk: leave no partial file behind to make it fuller.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        with self._lock:
            self._files[ref] = (path, len(data))
            self._total += len(data)
            self._evict()
        return Evidence(ref=ref, media_type=media_type, description=description)

    def get(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of ``ref``, or None if unknown, evicted or malformed."""
        if not _REF.match(ref):
            return None
        with self._lock:
            entry = self._files.get(ref)
        if entry is None:
            return None
        path, _ = entry
        try:
            return path.read_bytes(), _MEDIA[path.suffix]
        except FileNotFoundError:
            return None

    def shed(self, fraction: float = 0.5) -> int:
        """Delete the oldest ``fraction`` of the files (the state disk is full); returns bytes freed."""
        with self._lock:
            victims = sorted(self._files)[: max(1, int(len(self._files) * fraction))] if self._files else []
            freed = 0
            for ref in victims:
                path, size = self._files.pop(ref)
                self._total -= size
                freed += size
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return freed

    def _evict(self) -> None:
        while self._total > self.budget_bytes and self._files:
            oldest = min(self._files)  # refs sort by creation time
            path, size = self._files.pop(oldest)
            self._total -= size
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
