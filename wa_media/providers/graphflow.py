"""The Graph media flow the Cloud API and 360dialog share, each with its own paths and header.

Download a media from the URL its webhook gave, or look it up and download it from the URL the
look-up gives (a fresh URL when it has expired); upload a file as a form or through a resumable
session, delete a media, send a text.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from requests_toolbelt import MultipartEncoder

from wa_media.core.digests import normalise_sha256
from wa_media.core.errors import ForeignHost, InsecureUrl, TemporaryError, UrlRefused
from wa_media.core.identity import is_bsuid
from wa_media.core.mediatypes import resumable_problem
from wa_media.core.numbers import ascii_int
from wa_media.core.provider import Fetched, Progress
from wa_media.observability.logs import get_logger
from wa_media.observability.metrics import worker_metrics
from wa_media.providers.apiclient import ApiClient, Calls, answer_id, json_body
from wa_media.providers.resumable import upload_through_session
from wa_media.providers.transfer import FileBody, response_chunks

__all__ = ["URL_ATTEMPTS", "GraphFlowClient", "MediaInfo", "url_expired"]

log = get_logger(__name__)

# Fresh URLs to try when a download URL is refused (expired) before giving the task back.
URL_ATTEMPTS = 3
# What a download URL answers once it is dead: expired, revoked, or not the token's to fetch.
REFUSED_URL_STATUSES = frozenset({401, 403, 404, 410})


def url_expired(url: str, now: float) -> bool:
    """Whether a lookaside URL's `ext` query parameter (its expiry, Unix seconds) has passed; a
    URL without a readable one is not known to have expired."""
    try:
        ext = parse_qs(urlsplit(url).query).get("ext", [""])[0]
    except ValueError:
        return False
    return ext.isdigit() and int(ext) <= now


def _host(url: str) -> str | None:
    # For logs: the host alone, never the path and query that make the URL a credential.
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


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

    @field_validator("file_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        # Meta's syntax shows the size as a string, its real answers as an integer.
        if isinstance(value, str | bool):
            size = ascii_int(value)
            if size is None:
                raise ValueError("file_size is not a number of bytes")
            return size
        return value

    def without_url(self) -> dict[str, Any]:
        """The look-up as Meta sent it, minus the short-lived URL (for the sidecar)."""
        return self.model_dump(exclude={"url"})


class GraphFlowClient(ApiClient):
    """A provider speaking the Graph media flow; subclasses name its URLs and credentials."""

    url_attempts: ClassVar[int] = URL_ATTEMPTS

    @abstractmethod
    def _media_endpoint(
        self, media_id: str, phone_number_id: str | None
    ) -> tuple[str, dict[str, str] | None]:
        """The URL and query of a media's look-up and delete."""

    @abstractmethod
    def _download_url(self, url: str) -> str:
        """Where to download the bytes behind a look-up's URL."""

    @abstractmethod
    def _download_hosts(self) -> tuple[str, ...]:
        """The hosts a download may go to (and be redirected to) with the credential."""

    @abstractmethod
    def _media_upload_url(self, phone_number_id: str | None) -> str:
        """Where a form upload goes."""

    @abstractmethod
    def _messages_url(self, phone_number_id: str) -> str:
        """Where a message is sent."""

    @abstractmethod
    def _uploads_url(self) -> str:
        """Where resumable upload sessions are opened."""

    @abstractmethod
    def _session_url(self, session_id: str) -> str:
        """A resumable upload session's URL."""

    @abstractmethod
    def _session_auth(self) -> dict[str, str]:
        """The credential headers of resumable upload calls."""

    def lookup(self, media_id: str, phone_number_id: str | None) -> MediaInfo:
        """What and where the media is (its URL lives a few minutes)."""
        url, params = self._media_endpoint(media_id, phone_number_id)
        response = self._call("GET", url, "media look-up", params=params)
        try:
            return MediaInfo.model_validate(json_body(response))
        except ValidationError as exc:
            raise TemporaryError(
                f"media look-up answered an unexpected body: {exc.errors()[0]['loc']}"
            ) from None

    def media_url(self, media_id: str, phone_number_id: str | None) -> dict[str, Any]:
        """The look-up of a media, with its short-lived `url`."""
        return self.lookup(media_id, phone_number_id).model_dump()

    @contextmanager
    def _open_media(self, url: str, calls: Calls) -> Iterator[Iterator[bytes]]:
        what = "media download"
        with self._open(self._download_url(url), what, self._download_hosts(), calls) as response:
            if response.status_code in REFUSED_URL_STATUSES:
                raise UrlRefused(
                    f"download URL answered HTTP {response.status_code}",
                    status=response.status_code,
                )
            if response.status_code != 200:
                raise self._failure(response, what)
            yield response_chunks(response, what)

    def _open_webhook_url(
        self, url: str, opened: ExitStack, calls: Calls
    ) -> Iterator[bytes] | None:
        """The bytes behind a webhook's URL, held open by `opened`; None when the URL cannot
        serve them (expired, refused, or on a host that may not receive the credential), so
        that the caller looks the media up instead."""
        if url_expired(url, time.time()):
            reason, status = "expired", None
        else:
            try:
                return opened.enter_context(self._open_media(url, calls))
            except UrlRefused as exc:
                reason, status = "refused", exc.status
            except InsecureUrl:
                reason, status = "insecure_url", None
            except ForeignHost:
                reason, status = "host_not_allowed", None
        level = log.warning if reason in ("host_not_allowed", "insecure_url") else log.info
        level("webhook_url_fallback", reason=reason, status=status, host=_host(url))
        worker_metrics().webhook_url_fallbacks.labels(reason=reason).inc()
        return None

    @contextmanager
    def fetch(
        self,
        media_id: str,
        phone_number_id: str | None,
        url: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Iterator[Fetched]:
        """Stream the media's bytes from `url`, a webhook's download URL, when given and
        usable; else look the media up and stream them from the URL it gives, looking up
        again when that URL is refused (expired)."""
        calls = Calls()
        if url is not None:
            held = ExitStack()
            chunks = self._open_webhook_url(url, held, calls)
            if chunks is not None:
                with held:
                    # No look-up: the webhook's digest is what the bytes are checked against.
                    yield Fetched(
                        None, None, {}, chunks, downloads=calls.downloads, url_source="webhook"
                    )
                return
        started = time.perf_counter()
        info = self.lookup(media_id, phone_number_id)
        calls.lookups += 1
        looking = time.perf_counter() - started
        # Before the download: a file over either limit is never asked for.
        self._check_limit(info.file_size, max_bytes)
        for attempt in range(1, self.url_attempts + 1):
            opened = ExitStack()
            try:
                chunks = opened.enter_context(self._open_media(info.url, calls))
            except UrlRefused:
                if attempt == self.url_attempts:
                    raise
                started = time.perf_counter()
                info = self.lookup(media_id, phone_number_id)
                calls.lookups += 1
                looking += time.perf_counter() - started
                self._check_limit(info.file_size, max_bytes)
                continue
            with opened:
                yield Fetched(
                    info.sha256,
                    info.file_size,
                    info.without_url(),
                    chunks,
                    lookup_seconds=looking,
                    lookups=calls.lookups,
                    downloads=calls.downloads,
                    url_source="lookup",
                )
            return

    def _post_media(
        self, file_name: str, body: FileBody, mime_type: str, phone_number_id: str | None
    ) -> str:
        url = self._media_upload_url(phone_number_id)
        form = MultipartEncoder(
            fields={
                "messaging_product": "whatsapp",
                "type": mime_type,
                "file": (file_name, body, mime_type),
            }
        )
        headers = {**self._auth(), "Content-Type": form.content_type}
        response = self._call("POST", url, "media upload", headers=headers, data=form)
        return answer_id(response, "media upload", "id")

    def upload_resumable(self, path: Path, mime_type: str, progress: Progress | None = None) -> str:
        """Upload through a resumable session, resuming after breaks; return the file handle."""
        self._checked_file(path, mime_type, resumable_problem)
        return upload_through_session(self, path, mime_type, progress)

    def open_session(self, file_name: str, file_length: int, file_type: str) -> str:
        """Open a resumable upload session; return its id (`upload:...`)."""
        params = {"file_name": file_name, "file_length": str(file_length), "file_type": file_type}
        response = self._call(
            "POST",
            self._uploads_url(),
            "upload session",
            headers=self._session_auth(),
            params=params,
        )
        session_id = answer_id(response, "upload session", "id")
        if not session_id.startswith("upload:"):
            raise TemporaryError("upload session answered an id without its upload: prefix")
        return session_id

    def session_offset(self, session_id: str) -> int:
        """How many bytes of its file a resumable upload session holds."""
        response = self._call(
            "GET", self._session_url(session_id), "upload session", headers=self._session_auth()
        )
        body = json_body(response)
        offset = ascii_int(body.get("file_offset")) if isinstance(body, dict) else None
        if offset is None:
            raise TemporaryError("upload session answered no file_offset")
        return offset

    def send_from(self, session_id: str, offset: int, body: FileBody) -> dict[str, Any]:
        """Send a session's file from `offset`; return the answer (`{"h": ...}` when done)."""
        headers = {**self._session_auth(), "file_offset": str(offset)}
        response = self._call(
            "POST", self._session_url(session_id), "resumable upload", headers=headers, data=body
        )
        answer = json_body(response)
        return answer if isinstance(answer, dict) else {}

    def delete(self, media_id: str, phone_number_id: str | None) -> None:
        """Delete a media."""
        url, params = self._media_endpoint(media_id, phone_number_id)
        self._call("DELETE", url, "media delete", params=params)

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """Send a text in the Cloud API's body; return the new wamid.

        `to` is a phone number or a BSUID; a BSUID goes in the `recipient` field, as Meta's
        send API takes it for customers known only by it.
        """
        message = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "recipient" if is_bsuid(to) else "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }
        url = self._messages_url(phone_number_id)
        response = self._call("POST", url, "send message", json=message)
        return answer_id(response, "send message", "messages", 0, "id", required=False)
