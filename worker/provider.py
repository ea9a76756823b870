"""What the archive needs from a WhatsApp provider, whichever one delivers the file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Fetched", "Provider"]


@dataclass(frozen=True)
class Fetched:
    """A media being downloaded: what the provider announced, and its bytes as they arrive."""

    sha256: str | None
    """Hex digest the provider announced, when it announces one."""
    size: int | None
    lookup: dict[str, Any]
    """The provider's description of the media, without short-lived URLs (for the sidecar)."""
    chunks: Iterator[bytes] = field(repr=False)


class Provider(Protocol):
    """Media download and customer replies through one provider's API."""

    def check_paused(self) -> None:
        """Raise a CredentialsError while calls with this account's credentials are paused."""

    def fetch(self, media_id: str, phone_number_id: str | None) -> AbstractContextManager[Fetched]:
        """Open the media's bytes as a stream; ArchiveError subclasses on failure."""

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """Send a text message; return the new message's id."""
