"""The On-Premises API: media by id under `/v1/`, Bearer token, `{"errors": [...]}` bodies.

Its media answer their bytes directly, with no look-up and so no announced digest: the
webhook's sha256 is what the archive verifies. It has no media URLs and no resumable uploads:
its client implements neither MediaUrls nor ResumableUploads (wa_media/core/provider.py).

Its plugin: webhooks authenticated by their secret path token, naming no phone_number_id (the
account's is known from the token); accounts read from WHATSAPP_ONPREM_URL and
WHATSAPP_ACCESS_TOKEN (and, for `web`, WHATSAPP_PHONE_NUMBER_ID), or from an accounts file
entry's `url` (required) and `token`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import quote

import requests

from wa_media.config import variables as v
from wa_media.config.accounts import AccountEntry, AccountsFile, file_url
from wa_media.config.env import base_url
from wa_media.core.classify import ErrorCodes, classify
from wa_media.core.errors import ArchiveError, Unsupported
from wa_media.core.identity import is_bsuid
from wa_media.core.numbers import ascii_int
from wa_media.core.provider import Connection, Fetched, ProviderKind
from wa_media.providers.apiclient import ApiClient, Calls, answer_id
from wa_media.providers.transfer import FileBody, response_chunks

__all__ = ["ONPREM_CODES", "PLUGIN", "OnPremClient", "OnPremPlugin", "classify_onprem_error"]


# 1005 access denied, 1015 too many requests, 470 re-engagement (131047's twin),
# 1011 service not ready, 1014 internal error.
ONPREM_CODES = ErrorCodes(
    throttling=frozenset({1015}),
    credentials=frozenset({1005}),
    reengagement=frozenset({470}),
    temporary=frozenset({1011, 1014}),
)


def _onprem_code(body: Any) -> int | None:
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    return ascii_int(first.get("code")) if isinstance(first, dict) else None


def classify_onprem_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "On-Premises call"
) -> ArchiveError:
    """An On-Premises answer's error, by its first error's code or its status."""
    return classify(status, _onprem_code(body), ONPREM_CODES, retry_after=retry_after, what=what)


def _content_length(response: requests.Response) -> int | None:
    # A compressed body's length says nothing of the bytes it decodes to.
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    return ascii_int(response.headers.get("Content-Length"))


class OnPremClient(ApiClient):
    """The On-Premises provider; the token goes to the base URL's host only."""

    classify_error = staticmethod(classify_onprem_error)

    def _v1(self, path: str) -> str:
        return self._url(f"v1/{path}")

    def _media(self, media_id: str) -> str:
        return self._v1(f"media/{quote(media_id, safe='')}")

    @contextmanager
    def fetch(
        self,
        media_id: str,
        phone_number_id: str | None,
        url: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Iterator[Fetched]:
        """Stream the media's bytes (`GET /v1/media/{id}`); On-Premises webhooks carry no `url`,
        and one given is not used."""
        what = "media download"
        calls = Calls()
        with self._open(self._media(media_id), what, self._base_host(), calls) as response:
            if response.status_code != 200:
                raise self._failure(response, what)
            size = _content_length(response)
            self._check_limit(size, max_bytes)
            mime_type = response.headers.get("Content-Type", "application/octet-stream")
            lookup = {"id": media_id, "mime_type": mime_type}
            chunks = response_chunks(response, what)
            yield Fetched(None, size, lookup, chunks, downloads=calls.downloads)

    def _post_media(
        self, file_name: str, body: FileBody, mime_type: str, phone_number_id: str | None
    ) -> str:
        # The raw bytes, with their type: `POST /v1/media` takes no form.
        response = self._call(
            "POST",
            self._v1("media"),
            "media upload",
            headers={**self._auth(), "Content-Type": mime_type},
            data=body,
        )
        return answer_id(response, "media upload", "media", 0, "id")

    def delete(self, media_id: str, phone_number_id: str | None) -> None:
        """Delete a media (`DELETE /v1/media/{id}`)."""
        self._call("DELETE", self._media(media_id), "media delete")

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        """Send a text (`POST /v1/messages`); return the new message's id."""
        if is_bsuid(to):
            raise Unsupported("the On-Premises API sends to phone numbers only, not to a BSUID")
        message = {"recipient_type": "individual", "to": to, "type": "text", "text": {"body": body}}
        response = self._call("POST", self._v1("messages"), "send message", json=message)
        return answer_id(response, "send message", "messages", 0, "id", required=False)


class OnPremPlugin:
    """The On-Premises API's plugin (wa_media/providers/plugin.py)."""

    kind: ProviderKind = "onprem"
    title: str = "On-Premises API"
    client: type[ApiClient] = OnPremClient
    signed_webhooks: bool = False
    webhooks_name_number: bool = False
    url_required: str | None = "the On-Premises web app's base URL"
    own_fields: tuple[str, ...] = ()

    def check_entry(self, entry: AccountEntry) -> None:
        """Nothing of its own (its `url` is required: `url_required`)."""

    def env_connection(self, environ: Mapping[str, str], insecure: bool) -> Connection:
        """WHATSAPP_ONPREM_URL, WHATSAPP_ACCESS_TOKEN."""
        url = partial(base_url, insecure_http=insecure)
        return Connection(
            self.kind,
            v.WHATSAPP_ONPREM_URL.read_as(environ, url),
            v.WHATSAPP_ACCESS_TOKEN.read(environ),
            insecure_http=insecure,
        )

    def file_connection(
        self,
        number: str,
        entry: AccountEntry,
        accounts: AccountsFile,
        credential: str,
        insecure: bool,
    ) -> Connection:
        """`url`, which the schema requires."""
        assert entry.url is not None  # url_required
        url = file_url(number, entry.url, insecure)
        return Connection(self.kind, url, credential, insecure_http=insecure)


PLUGIN = OnPremPlugin()
