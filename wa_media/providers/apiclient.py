"""What every provider client shares: its session, the gate, calls, streams and downloads."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Self
from urllib.parse import urljoin

import requests

from wa_media.core.allowlist import carries_in_clear, host_entry, is_allowed_media_url
from wa_media.core.classify import Classifier, parse_retry_after
from wa_media.core.errors import (
    ArchiveError,
    CredentialsError,
    ForeignHost,
    InsecureUrl,
    MediaRejected,
    PermanentError,
    TemporaryError,
    TooBig,
)
from wa_media.core.mediatypes import upload_problem
from wa_media.core.provider import Connection, Fetched, Progress
from wa_media.observability.metrics import worker_metrics
from wa_media.providers.transfer import (
    NETWORK_ERRORS,
    FileBody,
    ProgressCounter,
    current_deadline,
    new_session,
    request_timeout,
    write_verified,
)
from wa_media.stores.gate import MetaGate

__all__ = ["ApiClient", "Calls", "answer_id", "json_body"]

REDIRECTS = 3
# The `kind` label of `wa_provider_calls_total`, by the `what` of each call.
CALL_KINDS: Mapping[str, str] = {
    "media look-up": "lookup",
    "media download": "download",
    "send message": "send",
    "media delete": "delete",
    "media upload": "upload",
    "upload session": "upload",
    "resumable upload": "upload",
}
# Enough of a file's start to tell an animated sticker from a static one.
_HEAD = 32


def json_body(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def answer_id(
    response: requests.Response, what: str, *path: str | int, required: bool = True
) -> str:
    """The id found at `path` in a 2xx answer's JSON.

    Missing, it is a TemporaryError when `required`, else "" (a sent message was accepted
    all the same: trying again would send it twice).
    """
    value: Any = json_body(response)
    for step in path:
        try:
            value = value[step]
        except (TypeError, KeyError, IndexError):
            value = None
            break
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value:
        return value
    if required:
        raise TemporaryError(f"{what} answered no id")
    return ""


def _count_call(what: str) -> None:
    worker_metrics().provider_calls.labels(kind=CALL_KINDS.get(what, "other")).inc()


def _network_failure(what: str, exc: Exception) -> ArchiveError:
    """A request that failed on the network: TimedOut when the try's deadline has passed."""
    deadline = current_deadline()
    if deadline is not None and (deadline.cut or deadline.remaining() <= 0):
        return deadline.error(what)
    return TemporaryError(f"{what} failed: {type(exc).__name__}")


@dataclass
class Calls:
    """The requests one media's fetch sent to the provider, for `wa_media_provider_calls`."""

    lookups: int = 0
    downloads: int = 0
    """Each redirect followed is one more."""


@dataclass
class ApiClient(ABC):
    """One account's provider client: one reused session; every failure is an ArchiveError."""

    connection: Connection
    session: requests.Session
    max_media_bytes: int
    gate: MetaGate | None = None

    # What a non-2xx answer in the provider's dialect means: its module's classifier, on the
    # decision ladder of wa_media/core/classify.py.
    classify_error: ClassVar[Classifier]

    @classmethod
    def create(
        cls,
        connection: Connection,
        *,
        max_media_bytes: int,
        gate: MetaGate | None = None,
        session: requests.Session | None = None,
    ) -> Self:
        """A client on its own session (or the given one), sending our User-Agent."""
        return cls(connection, new_session(session), max_media_bytes, gate)

    def _auth(self) -> dict[str, str]:
        """The headers that carry the credential: a Bearer token unless the provider differs."""
        return {"Authorization": f"Bearer {self.connection.credential}"}

    @abstractmethod
    def fetch(
        self,
        media_id: str,
        phone_number_id: str | None,
        url: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> AbstractContextManager[Fetched]:
        """Open the media's bytes as a stream; `url`, a webhook's download URL, is tried first
        where the provider has such URLs; TooBig when the size announced passes `max_bytes`
        too."""

    @abstractmethod
    def delete(self, media_id: str, phone_number_id: str | None) -> None:
        """Delete a media from the provider."""

    @abstractmethod
    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """Send a text message to a phone number or a BSUID; return the new message's id."""

    @abstractmethod
    def _post_media(
        self, file_name: str, body: FileBody, mime_type: str, phone_number_id: str | None
    ) -> str:
        """Send a checked file's bytes as a new media; return its id."""

    def check_paused(self) -> None:
        """Raise a CredentialsError while calls with this credential are paused."""
        if self.gate is not None:
            self.gate.check_paused()

    def _admit(self) -> None:
        if self.gate is not None:
            self.gate.admit()

    def _url(self, path: str) -> str:
        return f"{self.connection.base_url.rstrip('/')}/{path}"

    def _failure(self, response: requests.Response, what: str) -> ArchiveError:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        body = json_body(response)
        error = self.classify_error(response.status_code, body, retry_after=retry_after, what=what)
        if isinstance(error, CredentialsError) and self.gate is not None:
            self.gate.rejected()
            error.retry_after = float(self.gate.pause_seconds)
        return error

    def _call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request to the provider's API; a non-2xx answer is raised as its error.

        Under a try's deadline the answer is streamed and read while guarded, so that an answer
        that trickles in ends with the deadline too.
        """
        deadline = current_deadline()
        timeout = request_timeout(what)
        self._admit()
        _count_call(what)
        try:
            response = self.session.request(
                method,
                url,
                headers=headers if headers is not None else self._auth(),
                timeout=timeout,
                allow_redirects=False,
                stream=deadline is not None,
                **kwargs,
            )
            if deadline is not None:
                with deadline.guarding(response):
                    _ = response.content
        except NETWORK_ERRORS as exc:
            raise _network_failure(what, exc) from None
        if deadline is not None and deadline.cut:
            raise deadline.error(what)  # an answer without a length looks whole when cut
        if not 200 <= response.status_code < 300:
            raise self._failure(response, what)
        return response

    @contextmanager
    def _open(
        self, url: str, what: str, allowed: tuple[str, ...], calls: Calls | None = None
    ) -> Iterator[requests.Response]:
        """GET a stream, following redirects only to `allowed` hosts (the credential goes along).

        Yields the first answer that is no redirect, whatever its status; each request sent is
        counted in `calls`. Under a try's deadline the answer is guarded while the block reads
        it: its connection is shut down when the deadline passes.
        """
        deadline = current_deadline()
        insecure = self.connection.insecure_http
        for _ in range(REDIRECTS + 1):
            if carries_in_clear(url, insecure_http=insecure):
                raise InsecureUrl(
                    f"{what} URL is http:// to a host that is not loopback: the credential is "
                    "never sent in clear text (ALLOW_INSECURE_HTTP); not sent"
                )
            if not is_allowed_media_url(url, allowed, insecure_http=insecure):
                raise ForeignHost(
                    f"{what} URL is on a host not allowed to receive the credential "
                    "(WHATSAPP_MEDIA_HOSTS, or media_hosts in the accounts file, each `host` "
                    "for HTTPS on 443 or `host:port`); not sent"
                )
            timeout = request_timeout(what)
            self._admit()
            _count_call(what)
            if calls is not None:
                calls.downloads += 1
            try:
                response = self.session.get(
                    url, headers=self._auth(), timeout=timeout, stream=True, allow_redirects=False
                )
            except NETWORK_ERRORS as exc:
                raise _network_failure(what, exc) from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["Location"])
                    continue
                with deadline.guarding(response) if deadline is not None else nullcontext():
                    yield response
                return
        raise TemporaryError(f"{what} redirected too many times")

    def _base_host(self) -> tuple[str, ...]:
        """The base URL's `host:port`: the one host a stream may be redirected to."""
        return (host_entry(self.connection.base_url),)

    def _check_limit(self, size: int | None, own: int | None = None) -> None:
        limit = self.max_media_bytes
        if size is not None and size > limit:
            raise TooBig(f"media is {size} bytes, over MAX_MEDIA_BYTES={limit}")
        if size is not None and own is not None and size > own:
            raise TooBig(f"media is {size} bytes, over the account's limit of {own} bytes")

    def download(
        self,
        media_id: str,
        phone_number_id: str | None,
        out: BinaryIO,
        progress: Progress | None = None,
    ) -> Fetched:
        """Write the media's verified bytes to `out`; return what the provider announced."""
        with self.fetch(media_id, phone_number_id) as fetched:
            write_verified(fetched, out, limit=self.max_media_bytes, progress=progress)
        return dataclasses.replace(fetched, chunks=iter(()))

    def upload(
        self,
        path: Path,
        mime_type: str,
        phone_number_id: str | None,
        progress: Progress | None = None,
    ) -> str:
        """Upload a file (streamed) as a new media after checking its type and size; its id."""
        self._checked_file(path, mime_type)
        with path.open("rb") as file:
            body = FileBody(file, 0, ProgressCounter(progress))
            return self._post_media(path.name, body, mime_type, phone_number_id)

    @staticmethod
    def _checked_file(
        path: Path,
        mime_type: str,
        problem: Callable[[str, int, bytes], str | None] = upload_problem,
    ) -> None:
        """MediaRejected unless the file's type and size are accepted (before any request)."""
        try:
            size = path.stat().st_size
            with path.open("rb") as file:
                head = file.read(_HEAD)
        except OSError as exc:
            raise PermanentError(f"cannot read {path.name}: {exc.strerror}") from None
        refused = problem(mime_type, size, head)
        if refused is not None:
            raise MediaRejected(f"{path.name}: {refused}")
