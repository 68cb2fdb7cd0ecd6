"""The one retry policy: capped exponential backoff with jitter.

Every reconnect loop (supervised links, stream reopening, event resubscription) waits through it, so
that a county-wide platform or broker restart does not see every box come back in the same second.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with full jitter, capped: delay n is uniform in [cap_n / 2, cap_n]."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.attempt = 0

    def next_delay(self) -> float:
        # The exponent stops growing once far past any cap: 2.0**1024 raises OverflowError.
        cap = min(self.max_s, self.base_s * 2.0 ** min(self.attempt, 64))
        self.attempt += 1
        return random.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
