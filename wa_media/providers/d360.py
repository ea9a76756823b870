"""360dialog: the Cloud API's media flow behind its own base URL and `D360-API-KEY` header.

The key goes to the base URL's host only: a look-up's lookaside URL is downloaded from the
base URL in its place. 360dialog blocks a key after a handful of failed look-ups an hour, so
a refused look-up is never tried again here, and an expired URL is looked up again once.

Its plugin: webhooks authenticated by their secret path token; media URLs and resumable upload
sessions; accounts read from D360_URL and D360_API_KEY, or from an accounts file entry's `url`
(optional) and `token`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

from wa_media.config import variables as v
from wa_media.config.accounts import AccountEntry, AccountsFile, file_url
from wa_media.config.env import base_url
from wa_media.config.variables import D360_DEFAULT_URL
from wa_media.core.classify import ErrorCodes, classify
from wa_media.core.errors import ArchiveError
from wa_media.core.provider import Connection, ProviderKind
from wa_media.providers.apiclient import ApiClient
from wa_media.providers.cloud import classify_graph_error
from wa_media.providers.graphflow import GraphFlowClient

__all__ = [
    "D360_CODES",
    "D360_DEFAULT_URL",
    "D360_KEY_HEADER",
    "PLUGIN",
    "D360Client",
    "D360Plugin",
    "classify_d360_error",
]

D360_KEY_HEADER = "D360-API-KEY"


# 360dialog's bodies carry no code; a rejected or blocked key is 401 or 403.
D360_CODES = ErrorCodes(credentials_statuses=frozenset({401, 403}), credential="API key")


def classify_d360_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "360dialog call"
) -> ArchiveError:
    """A 360dialog answer's error, by its status; a Graph error body passed on is Meta's."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return classify_graph_error(status, body, retry_after=retry_after, what=what)
    return classify(status, None, D360_CODES, retry_after=retry_after, what=what)


class D360Client(GraphFlowClient):
    """The 360dialog provider."""

    url_attempts = 2
    classify_error = staticmethod(classify_d360_error)

    def _auth(self) -> dict[str, str]:
        return {D360_KEY_HEADER: self.connection.credential}

    def _session_auth(self) -> dict[str, str]:
        return self._auth()

    def _media_endpoint(
        self, media_id: str, phone_number_id: str | None
    ) -> tuple[str, dict[str, str] | None]:
        return self._url(quote(media_id, safe="")), None

    def _download_url(self, url: str) -> str:
        # https://lookaside.fbsbx.com/<path>?<query> → <base URL>/<path>?<query>
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.connection.base_url.rstrip('/')}{parts.path}{query}"

    def _download_hosts(self) -> tuple[str, ...]:
        return self._base_host()

    def _media_upload_url(self, phone_number_id: str | None) -> str:
        return self._url("media")

    def _messages_url(self, phone_number_id: str) -> str:
        return self._url("messages")

    def _uploads_url(self) -> str:
        return self._url("uploads")

    def _session_url(self, session_id: str) -> str:
        return self._url(quote(session_id, safe=":"))


class D360Plugin:
    """360dialog's plugin (wa_media/providers/plugin.py)."""

    kind: ProviderKind = "360dialog"
    title: str = "360dialog API"
    client: type[ApiClient] = D360Client
    signed_webhooks: bool = False
    webhooks_name_number: bool = True
    url_required: str | None = None
    own_fields: tuple[str, ...] = ()

    def check_entry(self, entry: AccountEntry) -> None:
        """Nothing of its own."""

    def env_connection(self, environ: Mapping[str, str], insecure: bool) -> Connection:
        """D360_URL, D360_API_KEY."""
        url = partial(base_url, insecure_http=insecure)
        return Connection(
            self.kind,
            v.D360_URL.read_as(environ, url),
            v.D360_API_KEY.read(environ),
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
        """`url`, 360dialog's own by default."""
        url = file_url(number, entry.url or D360_DEFAULT_URL, insecure)
        return Connection(self.kind, url, credential, insecure_http=insecure)


PLUGIN = D360Plugin()
