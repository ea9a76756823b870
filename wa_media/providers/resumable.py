"""Graph's Resumable Upload API, for every provider that offers it.

`POST /<APP_ID>/uploads?file_name=&file_length=&file_type=` opens a session (`upload:<id>`);
`POST /upload:<id>` with a `file_offset` header sends bytes from there and answers the file's
handle once it has them all; `GET /upload:<id>` tells the offset reached. A session takes the
file's bytes at the offset it has reached. When a request breaks off, the server keeps what it
took: ask it for its offset and send the rest from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from wa_media.core.errors import PermanentError, TemporaryError
from wa_media.core.provider import Progress
from wa_media.providers.transfer import FileBody, ProgressCounter

__all__ = ["RESUME_ATTEMPTS", "UploadSessions", "upload_through_session"]

# Resumptions per upload: each one sends at least the bytes the last one did not get to.
RESUME_ATTEMPTS = 5


class UploadSessions(Protocol):
    """A provider's three session calls; failures are raised as classified ArchiveErrors."""

    def open_session(self, file_name: str, file_length: int, file_type: str) -> str:
        """Open a session for a file; return its id (`upload:...`)."""

    def session_offset(self, session_id: str) -> int:
        """How many bytes of the file the session holds."""

    def send_from(self, session_id: str, offset: int, body: FileBody) -> dict[str, Any]:
        """Send the file's bytes from `offset`; return the answer (`{"h": ...}` when done)."""


def upload_through_session(
    sessions: UploadSessions,
    path: Path,
    mime_type: str,
    progress: Progress | None = None,
    *,
    attempts: int = RESUME_ATTEMPTS,
) -> str:
    """Upload a file through a new session, resuming after breaks; return its handle."""
    size = path.stat().st_size
    session_id = sessions.open_session(path.name, size, mime_type)
    counter = ProgressCounter(progress)
    offset = resumes = 0
    with path.open("rb") as file:
        while True:
            try:
                answer = sessions.send_from(session_id, offset, FileBody(file, offset, counter))
            except TemporaryError:
                # A reset, a timeout or a 5xx: the server may hold some of the bytes sent.
                if resumes >= attempts:
                    raise
                server = sessions.session_offset(session_id)
            except PermanentError:
                # A 400 for an offset the server is not at: its offset says where to go on.
                server = sessions.session_offset(session_id)
                if server == offset or resumes >= attempts:
                    raise
            else:
                handle = answer.get("h")
                if isinstance(handle, str) and handle:
                    return handle
                if resumes >= attempts:
                    raise TemporaryError("the upload session took the file but gave no handle")
                server = sessions.session_offset(session_id)
            if not 0 <= server <= size:
                raise PermanentError(
                    f"the upload session is at offset {server}, outside the file's {size} bytes"
                )
            offset, resumes = server, resumes + 1
