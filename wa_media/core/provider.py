"""What the service needs from a WhatsApp provider, whichever one the account uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDER_KINDS",
    "Connection",
    "Fetched",
    "MediaSource",
    "MediaUrls",
    "Progress",
    "Provider",
    "ProviderKind",
    "ResumableUploads",
]

ProviderKind = Literal["cloud", "360dialog", "onprem"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("cloud", "360dialog", "onprem")
DEFAULT_PROVIDER: ProviderKind = "cloud"
"""The provider of an account that names none (WHATSAPP_PROVIDER, an accounts file entry)."""

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the last call."""


@dataclass(frozen=True)
class Connection:
    """How to reach one account's provider, and with which credential."""

    kind: ProviderKind
    base_url: str
    """Cloud: the Graph base URL; 360dialog: its API base URL; On-Premises: the web app's URL."""
    credential: str = field(repr=False)
    """Cloud: the access token; 360dialog: the D360-API-KEY; On-Premises: the Bearer token."""
    api_version: str = "v23.0"
    """Cloud only: the Graph API version in paths."""
    media_hosts: tuple[str, ...] = ("lookaside.fbsbx.com",)
    """Cloud only: the hosts that may receive the token when downloading."""
    app_id: str | None = None
    """Cloud only: the Meta app that owns resumable upload sessions."""
    insecure_http: bool = False
    """Whether http:// URLs to hosts other than loopback may receive the credential
    (ALLOW_INSECURE_HTTP, for development only)."""


@dataclass(frozen=True)
class Fetched:
    """A media being downloaded: what the provider announced, and its bytes as they arrive."""

    sha256: str | None
    """Hex digest the provider announced, when it announces one."""
    size: int | None
    lookup: dict[str, Any]
    """The provider's description of the media, without short-lived URLs (for the sidecar)."""
    chunks: Iterator[bytes] = field(repr=False)
    lookup_seconds: float | None = None
    """Time spent looking the media up before its download, when the provider has a look-up."""
    lookups: int = 0
    """Look-ups made: none with a webhook's URL, one, or more when a download URL had expired."""
    downloads: int = 0
    """Download requests sent, those of refused URLs and redirects included."""
    url_source: Literal["webhook", "lookup"] | None = None
    """Where the download URL came from; None for a provider that serves bytes by id."""


class MediaSource(Protocol):
    """What archiving a media needs of one account's provider: the pause check, the media's
    bytes, its deletion, and the text of a warning.

    Every failure is raised as an ArchiveError subclass (wa_media/core/errors.py).
    """

    connection: Connection

    def check_paused(self) -> None:
        """Raise a CredentialsError while calls with this account's credential are paused."""

    def fetch(
        self,
        media_id: str,
        phone_number_id: str | None,
        url: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> AbstractContextManager[Fetched]:
        """Open the media's bytes as a stream; `url`, a webhook's download URL, is tried first
        where the provider has such URLs (not the On-Premises API), under the same host rules
        as a looked-up one, and a look-up replaces it when it cannot serve them. TooBig, before
        any byte, when the size announced passes MAX_MEDIA_BYTES or `max_bytes` (the account's
        own limit for the media's type)."""

    def delete(self, media_id: str, phone_number_id: str | None) -> None:
        """Delete a media from the provider."""

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """Send a text message to a phone number or a BSUID; return the new message's id."""


class Provider(MediaSource, Protocol):
    """One account's provider API as `wa-media`'s media commands use it: besides archiving's
    calls, a download to a file and an upload, which every provider has.

    A provider with media URLs also implements MediaUrls; one with resumable upload sessions,
    ResumableUploads: check with isinstance.
    """

    def download(
        self,
        media_id: str,
        phone_number_id: str | None,
        out: BinaryIO,
        progress: Progress | None = None,
    ) -> Fetched:
        """Write the media's verified bytes to `out`; return what the provider announced."""

    def upload(
        self,
        path: Path,
        mime_type: str,
        phone_number_id: str | None,
        progress: Progress | None = None,
    ) -> str:
        """Upload a file as a new media after checking its type and size; return its id."""


@runtime_checkable
class MediaUrls(Protocol):
    """The capability of a provider that looks a media up (the Cloud API, 360dialog)."""

    def media_url(self, media_id: str, phone_number_id: str | None) -> dict[str, Any]:
        """The provider's look-up of a media (with its short-lived `url`)."""


@runtime_checkable
class ResumableUploads(Protocol):
    """The capability of a provider with resumable upload sessions (the Cloud API,
    360dialog)."""

    def upload_resumable(self, path: Path, mime_type: str, progress: Progress | None = None) -> str:
        """Upload through a resumable session, resuming after breaks; return the file handle."""
