"""360dialog: the Cloud API's media flow behind its own base URL and `D360-API-KEY` header.

The key goes to the base URL's host only: a look-up's lookaside URL is downloaded from the
base URL in its place. 360dialog blocks a key after a handful of failed look-ups an hour, so
a refused look-up is never tried again here, and an expired URL is looked up again once.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from wa_media.core.classify import classify_d360_error
from wa_media.providers.graphflow import GraphFlowClient

__all__ = ["D360_KEY_HEADER", "D360Client"]

D360_KEY_HEADER = "D360-API-KEY"


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
