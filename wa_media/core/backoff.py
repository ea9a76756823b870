"""How long to wait before the next try: exponential, jittered, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "next_countdown"]


def next_countdown(
    retries: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before try number `retries + 1`: full jitter over `base * 2**retries`, capped.

    A server's `Retry-After` is a floor (still capped, so a countdown never outlives the
    broker's visibility timeout).
    """
    ceiling = min(cap, base * 2.0 ** min(retries, 30))
    # Half fixed, half random: spreads a burst of retries without ever retrying at once.
    jitter = (rng or random).uniform(0, ceiling / 2)
    delay = ceiling / 2 + jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


@dataclass(frozen=True)
class Backoff:
    """A task's retry policy for errors that carry no countdown of their own."""

    base: float
    cap: float

    def countdown(self, retries: int, retry_after: float | None = None) -> float:
        """Seconds before try number `retries + 1` (see next_countdown)."""
        return next_countdown(retries, base=self.base, cap=self.cap, retry_after=retry_after)
