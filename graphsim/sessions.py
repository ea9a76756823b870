"""Resumable upload sessions (Graph's Resumable Upload API): bytes arrive at an offset."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from graphsim.records import Provider

__all__ = [
    "SESSION_PREFIX",
    "OffsetMismatch",
    "Progress",
    "SessionStore",
    "UploadSession",
    "UploadTooLong",
]

SESSION_PREFIX = "upload:"
# A handle stays usable this long, like Meta's (it shows in the handle as `e:<expiry>`).
HANDLE_TTL = 30 * 24 * 3600


@dataclass(frozen=True)
class Progress:
    """A session's declared file name and length, and its offset at one moment."""

    file_name: str
    file_length: int
    file_offset: int


class OffsetMismatch(Exception):
    """Bytes were sent for an offset other than the session's current one."""

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.expected = expected


class UploadTooLong(Exception):
    """More bytes were sent than the session's declared file length."""


@dataclass
class UploadSession:
    """One session: its declared file, the bytes received so far and, once complete, a handle."""

    id: str  # with its `upload:` prefix
    provider: Provider
    owner: str | None  # the app id of a Graph session
    file_name: str
    file_length: int
    file_type: str
    created_at: float
    data: bytearray = field(default_factory=bytearray, repr=False)
    handle: str | None = None
    completed_at: float | None = None

    @property
    def offset(self) -> int:
        """How many bytes were received."""
        return len(self.data)

    def describe(self) -> dict[str, Any]:
        """Return the control API's description, with the bytes' sha256 once complete."""
        complete = self.handle is not None
        return {
            "id": self.id,
            "provider": self.provider,
            "owner": self.owner,
            "file_name": self.file_name,
            "file_length": self.file_length,
            "file_type": self.file_type,
            "file_offset": self.offset,
            "complete": complete,
            "handle": self.handle,
            "sha256": hashlib.sha256(self.data).hexdigest() if complete else None,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
        }


def _handle(session: UploadSession, now: float) -> str:
    # Shaped like Meta's: version, base64 file name, type, opaque token, expiry.
    name = base64.b64encode(session.file_name.encode()).decode()
    token = secrets.token_urlsafe(24)
    return f"4:{name}:{session.file_type}:{token}:e:{int(now) + HANDLE_TTL}:{session.owner or ''}"


class SessionStore:
    """The thread-safe sessions by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, UploadSession] = {}

    def create(
        self,
        provider: Provider,
        owner: str | None,
        file_name: str,
        file_length: int,
        file_type: str,
    ) -> str:
        """Open a session and return its id (`upload:...`)."""
        session_id = SESSION_PREFIX + secrets.token_urlsafe(18)
        session = UploadSession(
            session_id, provider, owner, file_name, file_length, file_type, time.time()
        )
        with self._lock:
            self._sessions[session_id] = session
        return session_id

    def peek(self, session_id: str) -> Progress | None:
        """Return a session's declared file and offset, None when there is no such session."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            return Progress(session.file_name, session.file_length, session.offset)

    def append(self, session_id: str, offset: int, data: bytes) -> tuple[int, str | None]:
        """Add bytes sent for `offset`; return the new offset and the handle once complete.

        Raise `KeyError` for an unknown session, `OffsetMismatch` when `offset` is not the
        current one and `UploadTooLong` when the bytes would pass the declared length.
        """
        with self._lock:
            session = self._sessions[session_id]
            if offset != session.offset:
                raise OffsetMismatch(session.offset)
            if session.offset + len(data) > session.file_length:
                raise UploadTooLong(session_id)
            session.data += data
            if session.handle is None and session.offset == session.file_length:
                now = time.time()
                session.handle, session.completed_at = _handle(session, now), now
            return session.offset, session.handle

    def describe(self) -> list[dict[str, Any]]:
        """Return every session, oldest first."""
        with self._lock:
            sessions = sorted(self._sessions.values(), key=lambda s: s.created_at)
            return [session.describe() for session in sessions]

    def clear(self) -> None:
        """Forget every session."""
        with self._lock:
            self._sessions.clear()
