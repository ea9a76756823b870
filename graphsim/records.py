"""What the simulator saw: counters, a request log, sent messages and foreign-host requests."""

from __future__ import annotations

import copy
import threading
from collections import Counter, deque
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

__all__ = [
    "LOGGED_KEY",
    "REQUEST_LOG_LIMIT",
    "Counted",
    "GraphOp",
    "LoggedRequest",
    "Provider",
    "Recorder",
]

Counted = Literal["lookups", "downloads", "sends"]
# `upload` carries file bytes; `upload_session` opens a resumable session or reads its offset.
GraphOp = Literal["lookup", "download", "send", "delete", "upload", "upload_session"]
# The dialect a request came through.
Provider = Literal["cloud", "360dialog", "onprem"]

# The WSGI environ key where a handler may note the key to log (e.g. an uploaded media's new id).
LOGGED_KEY = "graphsim.logged_key"

# The request log keeps the newest entries only, so a long benchmark cannot exhaust memory.
REQUEST_LOG_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One provider API request as answered: its operation, key, arrival, status and client."""

    op: GraphOp
    # The recipient for a send (`to`, else `recipient`; None when it has neither), the session id
    # (`upload:...`) for a resumable upload, the new media id for another upload.
    media_id: str | None
    time: float  # time.time() on arrival
    status: int | None  # None when the connection was dropped unanswered (an interrupt fault)
    user_agent: str | None
    authorized: bool  # whether a valid credential of its dialect was presented
    connection: int | None  # the server's number for the connection it came on
    provider: Provider = "cloud"

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the control API serves it."""
        return {
            "op": self.op,
            "media_id": self.media_id,
            "time": self.time,
            "status": self.status,
            "user_agent": self.user_agent,
            "authorized": self.authorized,
            "connection": self.connection,
            "provider": self.provider,
        }


class Recorder:
    """Thread-safe records, read back through the control API."""

    def __init__(self, request_log_limit: int = REQUEST_LOG_LIMIT) -> None:
        self._lock = threading.Lock()
        self._counters: dict[Counted, Counter[str]] = {
            "lookups": Counter(),
            "downloads": Counter(),
            "sends": Counter(),
        }
        self._messages: list[dict[str, Any]] = []
        self._foreign: list[dict[str, Any]] = []
        self._requests: deque[LoggedRequest] = deque(maxlen=request_log_limit)

    def count(self, kind: Counted, key: str) -> None:
        """Count one request of a kind, keyed by media id (or recipient for sends)."""
        with self._lock:
            self._counters[kind][key] += 1

    def add_message(self, message: dict[str, Any]) -> None:
        """Record a message accepted by a send endpoint."""
        with self._lock:
            self._messages.append(message)

    def add_foreign(self, request: dict[str, Any]) -> None:
        """Record a request that reached the foreign host."""
        with self._lock:
            self._foreign.append(request)

    def log_request(self, entry: LoggedRequest) -> None:
        """Append a provider API request to the log, dropping the oldest entry when full."""
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        """Return the logged requests, oldest arrival first."""
        with self._lock:
            entries = list(self._requests)
        # Logged when answered, so a slow request may follow a later, faster one.
        return [entry.to_json() for entry in sorted(entries, key=attrgetter("time"))]

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
            self._requests.clear()
