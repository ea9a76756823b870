"""The On-Premises API: media by id under `/v1/`, Bearer token, `{"errors": [...]}` bodies.

Its media answer their bytes directly, with no look-up and so no announced digest: the
webhook's sha256 is what the archive verifies. It has no media URLs and no resumable uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import requests

from wa_media.core.classify import classify_onprem_error
from wa_media.core.errors import Unsupported
from wa_media.core.identity import is_bsuid
from wa_media.core.numbers import ascii_int
from wa_media.core.provider import Fetched, Progress
from wa_media.providers.apiclient import ApiClient, Calls, answer_id
from wa_media.providers.transfer import FileBody, response_chunks

__all__ = ["OnPremClient"]


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
        self, media_id: str, phone_number_id: str | None, url: str | None = None
    ) -> Iterator[Fetched]:
        """Stream the media's bytes (`GET /v1/media/{id}`); On-Premises webhooks carry no `url`,
        and one given is not used."""
        what = "media download"
        calls = Calls()
        with self._open(self._media(media_id), what, self._base_host(), calls) as response:
            if response.status_code != 200:
                raise self._failure(response, what)
            size = _content_length(response)
            self._check_limit(size)
            mime_type = response.headers.get("Content-Type", "application/octet-stream")
            lookup = {"id": media_id, "mime_type": mime_type}
            chunks = response_chunks(response, what)
            yield Fetched(None, size, lookup, chunks, downloads=calls.downloads)

    def media_url(self, media_id: str, phone_number_id: str | None) -> NoReturn:
        """Unsupported: On-Premises media have no URL; `fetch` or `download` them by id."""
        raise Unsupported("the On-Premises API has no media URLs; download the media by id")

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

    def upload_resumable(
        self, path: Path, mime_type: str, progress: Progress | None = None
    ) -> NoReturn:
        """Unsupported: the On-Premises API has no resumable upload sessions."""
        raise Unsupported("the On-Premises API has no resumable uploads; use upload")

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
