"""The Cloud API (Meta's Graph API): Bearer token, paths under the API version.

Its plugin: webhooks signed by a Meta app's secret (X-Hub-Signature-256); media URLs and
resumable upload sessions; accounts read from WHATSAPP_GRAPH_URL, WHATSAPP_ACCESS_TOKEN,
WHATSAPP_API_VERSION, WHATSAPP_MEDIA_HOSTS and WHATSAPP_APP_ID, or from an accounts file
entry's `url`, `token`, `api_version`, `media_hosts` and `app`/`apps` (fields only it takes).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

from wa_media.config import variables as v
from wa_media.config.accounts import ACCOUNTS_FILE_VARIABLE, AccountEntry, AccountsFile, file_url
from wa_media.config.env import base_url, host_list
from wa_media.config.variables import API_VERSION_DEFAULT, GRAPH_DEFAULT_URL, MEDIA_HOSTS_DEFAULT
from wa_media.core.classify import ErrorCodes, classify
from wa_media.core.errors import ArchiveError, ConfigError, PermanentError
from wa_media.core.numbers import ascii_int
from wa_media.core.provider import Connection, ProviderKind
from wa_media.providers.apiclient import ApiClient
from wa_media.providers.graphflow import GraphFlowClient

__all__ = [
    "API_VERSION_DEFAULT",
    "GRAPH_CODES",
    "GRAPH_DEFAULT_URL",
    "MEDIA_HOSTS_DEFAULT",
    "PLUGIN",
    "THROTTLING_CODES",
    "CloudPlugin",
    "GraphClient",
    "classify_graph_error",
]


# The Graph error codes by what they mean; the code decides before the status.
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
GRAPH_CODES = ErrorCodes(
    throttling=THROTTLING_CODES,
    credentials=frozenset({190}),
    reengagement=frozenset({131047}),
    temporary=frozenset({1, 2, 131000}),
)


def _graph_code(body: Any) -> int | None:
    error = body.get("error") if isinstance(body, dict) else None
    return ascii_int(error.get("code")) if isinstance(error, dict) else None


def classify_graph_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "Graph API call"
) -> ArchiveError:
    """A Graph answer's error. The code decides before the status: Meta answers throttling and
    expired tokens with 400 or 403 as well as 429 and 401."""
    return classify(status, _graph_code(body), GRAPH_CODES, retry_after=retry_after, what=what)


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


class CloudPlugin:
    """The Cloud API's plugin (wa_media/providers/plugin.py)."""

    kind: ProviderKind = "cloud"
    title: str = "Cloud API"
    client: type[ApiClient] = GraphClient
    signed_webhooks: bool = True
    webhooks_name_number: bool = True
    url_required: str | None = None
    own_fields: tuple[str, ...] = ("api_version", "media_hosts", "app", "apps")

    def check_entry(self, entry: AccountEntry) -> None:
        """`app` and `apps` exclude each other."""
        if entry.app is not None and entry.apps is not None:
            raise ValueError("give either app or apps, not both")

    def env_connection(self, environ: Mapping[str, str], insecure: bool) -> Connection:
        """WHATSAPP_GRAPH_URL, WHATSAPP_ACCESS_TOKEN, WHATSAPP_API_VERSION,
        WHATSAPP_MEDIA_HOSTS, WHATSAPP_APP_ID."""
        url = partial(base_url, insecure_http=insecure)
        return Connection(
            self.kind,
            v.WHATSAPP_GRAPH_URL.read_as(environ, url),
            v.WHATSAPP_ACCESS_TOKEN.read(environ),
            api_version=v.WHATSAPP_API_VERSION.read(environ),
            media_hosts=v.WHATSAPP_MEDIA_HOSTS.read(environ),
            app_id=v.WHATSAPP_APP_ID.read_optional(environ),
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
        """`url`, `api_version`, `media_hosts`; the app id of the first of its apps with one,
        which owns its resumable upload sessions."""
        ids = [accounts.apps[name].app_id for name in accounts.apps_of(number)]
        app_id = next((found for found in ids if found is not None), None)
        hosts = entry.media_hosts or [MEDIA_HOSTS_DEFAULT]
        try:
            media_hosts = host_list(",".join(hosts))
        except ValueError as exc:
            raise ConfigError(
                f"{ACCOUNTS_FILE_VARIABLE}: accounts.{number}.media_hosts: {exc}"
            ) from None
        return Connection(
            self.kind,
            file_url(number, entry.url or GRAPH_DEFAULT_URL, insecure),
            credential,
            api_version=entry.api_version or API_VERSION_DEFAULT,
            media_hosts=media_hosts,
            app_id=app_id,
            insecure_http=insecure,
        )


PLUGIN = CloudPlugin()
