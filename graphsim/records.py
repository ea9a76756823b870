"""What the simulator saw: request counters, sent messages and requests to the foreign host."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from typing import Any, Literal

__all__ = ["Counted", "Recorder"]

Counted = Literal["lookups", "downloads", "sends"]


class Recorder:
    """Thread-safe records, read back through the control API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[Counted, Counter[str]] = {
            "lookups": Counter(),
            "downloads": Counter(),
            "sends": Counter(),
        }
        self._messages: list[dict[str, Any]] = []
        self._foreign: list[dict[str, Any]] = []

    def count(self, kind: Counted, key: str) -> None:
        """Count one request of a kind, keyed by media id (or recipient for sends)."""
        with self._lock:
            self._counters[kind][key] += 1

    def add_message(self, message: dict[str, Any]) -> None:
        """Record a message accepted by the send endpoint."""
        with self._lock:
            self._messages.append(message)

    def add_foreign(self, request: dict[str, Any]) -> None:
        """Record a request that reached the foreign host."""
        with self._lock:
            self._foreign.append(request)

    def messages(self) -> list[dict[str, Any]]:
        """Return a copy of the sent messages, oldest first."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def foreign(self) -> list[dict[str, Any]]:
        """Return a copy of the foreign-host requests, oldest first."""
        with self._lock:
            return copy.deepcopy(self._foreign)

    def stats(self) -> dict[str, dict[str, int]]:
        """Return the counters as `{kind: {key: n}}`."""
        with self._lock:
            return {kind: dict(counter) for kind, counter in self._counters.items()}

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            for counter in self._counters.values():
                counter.clear()
            self._messages.clear()
            self._foreign.clear()
