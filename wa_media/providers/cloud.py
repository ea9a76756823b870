"""The Cloud API (Meta's Graph API): Bearer token, paths under the API version."""

from __future__ import annotations

from urllib.parse import quote

from wa_media.core.classify import classify_graph_error
from wa_media.core.errors import PermanentError
from wa_media.providers.graphflow import GraphFlowClient

__all__ = ["GraphClient"]


class GraphClient(GraphFlowClient):
    """The Cloud API provider; the token goes only to the Graph host and the media hosts."""

    classify_error = staticmethod(classify_graph_error)

    def _session_auth(self) -> dict[str, str]:
        # The scheme of Graph's Resumable Upload API.
        return {"Authorization": f"OAuth {self.connection.credential}"}

    def _versioned(self, path: str) -> str:
        return self._url(f"{self.connection.api_version}/{path}")

    def _media_endpoint(
        self, media_id: str, phone_number_id: str | None
    ) -> tuple[str, dict[str, str] | None]:
        # With phone_number_id, Meta refuses media that belong to another number.
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        return self._versioned(quote(media_id, safe="")), params

    def _download_url(self, url: str) -> str:
        return url

    def _download_hosts(self) -> tuple[str, ...]:
        return self.connection.media_hosts

    def _media_upload_url(self, phone_number_id: str | None) -> str:
        if not phone_number_id:
            raise PermanentError("a Cloud API upload needs the phone_number_id it is for")
        return self._versioned(f"{quote(phone_number_id, safe='')}/media")

    def _messages_url(self, phone_number_id: str) -> str:
        return self._versioned(f"{quote(phone_number_id, safe='')}/messages")

    def _uploads_url(self) -> str:
        app_id = self.connection.app_id
        if not app_id:
            raise PermanentError(
                "resumable uploads need the account's Meta app id (Connection.app_id)"
            )
        return self._versioned(f"{quote(app_id, safe='')}/uploads")

    def _session_url(self, session_id: str) -> str:
        return self._versioned(quote(session_id, safe=":"))
