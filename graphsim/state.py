"""The simulator's shared state: media, faults, records, credentials and addresses."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable

from graphsim.blocking import LookupBlocker
from graphsim.faults import FaultBook
from graphsim.media import MediaStore
from graphsim.records import Recorder
from graphsim.sessions import SessionStore

__all__ = ["DEFAULT_D360_KEYS", "DEFAULT_ONPREM_TOKENS", "SimState", "TokenSet"]

DEFAULT_D360_KEYS = ("d360-key",)
DEFAULT_ONPREM_TOKENS = ("onprem-token",)


class TokenSet:
    """The thread-safe set of credentials (tokens or API keys) currently accepted."""

    def __init__(self, initial: str | Iterable[str]) -> None:
        self._initial = frozenset([initial] if isinstance(initial, str) else initial)
        self._lock = threading.Lock()
        self._tokens = self._initial

    def replace(self, tokens: Iterable[str]) -> None:
        """Accept exactly these credentials from now on (an empty set revokes all)."""
        new = frozenset(tokens)
        with self._lock:
            self._tokens = new

    def reset(self) -> None:
        """Accept only the initial credentials again."""
        self.replace(self._initial)

    def contains(self, credential: str | None) -> bool:
        """Whether a bare credential (e.g. an API key header's value) is accepted."""
        if not credential:
            return False
        with self._lock:
            return credential.strip() in self._tokens

    def accepts(self, authorization: str | None, schemes: Iterable[str] = ("bearer",)) -> bool:
        """Whether an `Authorization` header carries a valid token in one of these schemes."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() in schemes and self.contains(token)


class SimState:
    """Everything the request handlers share; each part carries its own lock."""

    def __init__(
        self,
        token: str,
        url_ttl: float,
        d360_keys: Iterable[str] = DEFAULT_D360_KEYS,
        onprem_tokens: Iterable[str] = DEFAULT_ONPREM_TOKENS,
    ) -> None:
        self.url_ttl = url_ttl
        self.media = MediaStore()
        self.faults = FaultBook()
        self.records = Recorder()
        self.sessions = SessionStore()
        self.tokens = TokenSet(token)
        self.d360_keys = TokenSet(d360_keys)
        self.onprem_tokens = TokenSet(onprem_tokens)
        self.d360_blocker = LookupBlocker()
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
        """Forget media, faults, latency, records and sessions; restore initial credentials."""
        self.media.clear()
        self.faults.clear()
        self.faults.latency = 0.0
        self.records.clear()
        self.sessions.clear()
        self.tokens.reset()
        self.d360_keys.reset()
        self.onprem_tokens.reset()
        self.d360_blocker.reset()
