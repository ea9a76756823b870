"""360dialog's block on failed media look-ups: too many in a window and a key is refused."""

from __future__ import annotations

import threading
from collections import defaultdict, deque

__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW", "LookupBlocker"]

DEFAULT_LIMIT = 5
DEFAULT_WINDOW = 3600.0


class LookupBlocker:
    """Counts failed look-ups per key in a sliding window; thread-safe, clock passed in."""

    def __init__(self, limit: int = DEFAULT_LIMIT, window: float = DEFAULT_WINDOW) -> None:
        self._lock = threading.Lock()
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self.configure(limit, window)

    def configure(self, limit: int, window: float) -> None:
        """Block a key after `limit` failures within `window` seconds."""
        if limit < 1 or window <= 0:
            raise ValueError("the block needs a positive limit and window")
        with self._lock:
            self._limit, self._window = limit, window

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def record_failure(self, key: str, now: float) -> None:
        """Note a look-up of an unknown media by this key."""
        with self._lock:
            self._recent(key, now).append(now)

    def blocked_for(self, key: str, now: float) -> float | None:
        """Seconds until this key is unblocked, or None when it is not blocked."""
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) < self._limit:
                return None
            # The block lifts when enough failures have aged out of the window.
            return failures[-self._limit] + self._window - now

    def reset(self) -> None:
        """Forget every failure and restore the default limit and window."""
        with self._lock:
            self._failures.clear()
            self._limit, self._window = DEFAULT_LIMIT, DEFAULT_WINDOW
