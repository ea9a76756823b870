"""The Cloud API adapter: media look-up, media download and sending a text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from worker.allowlist import is_allowed_media_url
from worker.classify import classify_graph_error, parse_retry_after
from worker.config import WorkerSettings
from worker.digests import normalise_sha256
from worker.errors import CredentialsError, PermanentError, RetryableError, TemporaryError
from worker.gate import MetaGate
from worker.provider import Fetched

__all__ = ["CHUNK_SIZE", "TIMEOUT", "USER_AGENT", "GraphClient", "MediaInfo", "UrlRefused"]

USER_AGENT = "wa-media-archiver/0.1 (+https://github.com/wa-media-archiver)"
# (connect, read) seconds for every call; the read timeout bounds a stalled download too.
TIMEOUT = (5.0, 30.0)
CHUNK_SIZE = 256 * 1024
_REDIRECTS = 3
# Fresh URLs to try when a download URL is refused (expired) before giving the task back.
URL_ATTEMPTS = 3
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class UrlRefused(RetryableError):
    """The download URL answered 401, 403 or 404: it has expired; look the media up again."""


class MediaInfo(BaseModel):
    """A media look-up result, with the digest normalised to hex."""

    model_config = ConfigDict(frozen=True, extra="allow")

    url: str
    mime_type: str
    sha256: str
    file_size: int
    id: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        return normalise_sha256(value)

    def without_url(self) -> dict[str, Any]:
        """The look-up as Meta sent it, minus the short-lived URL (for the sidecar)."""
        return self.model_dump(exclude={"url"})


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@dataclass
class GraphClient:
    """The Cloud API provider: one reused session; every failure becomes an ArchiveError."""

    settings: WorkerSettings
    session: requests.Session
    gate: MetaGate | None = None

    @classmethod
    def create(cls, settings: WorkerSettings, gate: MetaGate | None = None) -> GraphClient:
        """A client with its own connection pool."""
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        return cls(settings, session, gate)

    def check_paused(self) -> None:
        """Raise PausedError while calls with this token are paused."""
        if self.gate is not None:
            self.gate.check_paused()

    def _admit(self) -> None:
        if self.gate is not None:
            self.gate.admit()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.access_token}"}

    def _failure(self, response: requests.Response, what: str) -> Exception:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        error = classify_graph_error(
            response.status_code, _json(response), retry_after=retry_after, what=what
        )
        if isinstance(error, CredentialsError) and self.gate is not None:
            self.gate.rejected()
            error.retry_after = float(self.gate.pause_seconds)
        return error

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        self._admit()
        try:
            response = self.session.request(
                method, url, headers=self._auth(), timeout=TIMEOUT, allow_redirects=False, **kwargs
            )
        except _NETWORK_ERRORS as exc:
            raise TemporaryError(f"{what} failed: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise self._failure(response, what)
        return response

    def lookup(self, media_id: str, phone_number_id: str | None) -> MediaInfo:
        """`GET /{version}/{media_id}?phone_number_id=`: where and what the media is."""
        url = f"{self.settings.graph_url}/{self.settings.api_version}/{media_id}"
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        response = self._call("GET", url, "media look-up", params=params)
        try:
            info = MediaInfo.model_validate(_json(response))
        except ValidationError as exc:
            raise TemporaryError(
                f"media look-up answered an unexpected body: {exc.errors()[0]['loc']}"
            ) from None
        limit = self.settings.max_media_bytes
        if info.file_size > limit:
            raise PermanentError(f"media is {info.file_size} bytes, over MAX_MEDIA_BYTES={limit}")
        return info

    @contextmanager
    def download(self, url: str) -> Iterator[Iterator[bytes]]:
        """Stream the bytes behind a look-up URL; the token goes only to allowed hosts."""
        for _ in range(_REDIRECTS + 1):
            if not is_allowed_media_url(url, self.settings.media_hosts):
                raise PermanentError(
                    "download URL host is not in WHATSAPP_MEDIA_HOSTS; the token was not sent"
                )
            self._admit()
            try:
                response = self.session.get(
                    url, headers=self._auth(), timeout=TIMEOUT, stream=True, allow_redirects=False
                )
            except _NETWORK_ERRORS as exc:
                raise TemporaryError(f"media download failed: {type(exc).__name__}") from None
            with response:
                if response.is_redirect:
                    url = requests.compat.urljoin(url, response.headers["Location"])
                    continue
                if response.status_code in (401, 403, 404):
                    raise UrlRefused(f"download URL answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise self._failure(response, "media download")
                yield self._chunks(response)
                return
        raise TemporaryError("media download redirected too many times")

    @staticmethod
    def _chunks(response: requests.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_content(CHUNK_SIZE)
        except _NETWORK_ERRORS as exc:
            raise TemporaryError(f"media download broke off: {type(exc).__name__}") from None

    @contextmanager
    def fetch(self, media_id: str, phone_number_id: str | None) -> Iterator[Fetched]:
        """Look the media up and stream its bytes; a refused (expired) URL is looked up again."""
        info = self.lookup(media_id, phone_number_id)
        for attempt in range(1, URL_ATTEMPTS + 1):
            opened = ExitStack()
            try:
                chunks = opened.enter_context(self.download(info.url))
            except UrlRefused:
                if attempt == URL_ATTEMPTS:
                    raise
                info = self.lookup(media_id, phone_number_id)
                continue
            with opened:
                yield Fetched(info.sha256, info.file_size, info.without_url(), chunks)
            return

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """`POST /{version}/{phone_number_id}/messages` with a text; return the new wamid."""
        url = f"{self.settings.graph_url}/{self.settings.api_version}/{phone_number_id}/messages"
        message = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }
        response = self._call("POST", url, "send message", json=message)
        try:
            return str(_json(response)["messages"][0]["id"])
        except (TypeError, KeyError, IndexError):
            return ""
