"""The simulator's shared state: media, faults, records, valid tokens and addresses."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable

from graphsim.faults import FaultBook
from graphsim.media import MediaStore
from graphsim.records import Recorder

__all__ = ["SimState", "TokenSet"]


class TokenSet:
    """The thread-safe set of access tokens currently accepted."""

    def __init__(self, initial: str) -> None:
        self._initial = initial
        self._lock = threading.Lock()
        self._tokens = frozenset({initial})

    def replace(self, tokens: Iterable[str]) -> None:
        """Accept exactly these tokens from now on (an empty set revokes all)."""
        new = frozenset(tokens)
        with self._lock:
            self._tokens = new

    def reset(self) -> None:
        """Accept only the initial token again."""
        self.replace([self._initial])

    def accepts(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries a valid Bearer token."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            return token.strip() in self._tokens


class SimState:
    """Everything the request handlers share; each part carries its own lock."""

    def __init__(self, token: str, url_ttl: float) -> None:
        self.url_ttl = url_ttl
        self.media = MediaStore()
        self.faults = FaultBook()
        self.records = Recorder()
        self.tokens = TokenSet(token)
        # Set once by the server before it serves its first request.
        self.base_url = ""
        self.foreign_base_url = ""
        self.url_key = secrets.token_bytes(32)
        self.closing = threading.Event()

    def pause(self, seconds: float) -> None:
        """Wait before answering; cut short when the server stops."""
        if seconds > 0:
            self.closing.wait(seconds)

    def reset(self) -> None:
        """Forget media, faults, latency and records; accept only the initial token."""
        self.media.clear()
        self.faults.clear()
        self.faults.latency = 0.0
        self.records.clear()
        self.tokens.reset()
