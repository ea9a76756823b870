"""The `web` process's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from wa_media.config import variables as v
from wa_media.config.accounts import WebAccounts, WebRoute
from wa_media.config.lookup import LookupSettings, lookup_settings
from wa_media.config.variables import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_FANOUT_BATCH,
    DEFAULT_REDIS_URL,
    DEFAULT_WEB_METRICS_PORT,
)
from wa_media.config.variables import DEFAULT_REPLY_MAX_PER_WEBHOOK as REPLY_MAX_PER_WEBHOOK
from wa_media.core.provider import DEFAULT_PROVIDER
from wa_media.providers.accounts import load_accounts_file, web_accounts

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_WEB_METRICS_PORT",
    "MAX_BODY_BYTES",
    "REPLY_MAX_PER_WEBHOOK",
    "WebSettings",
]

# Meta sends at most 3 MB; anything past 4 MiB is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024

# Without settings read: any phone_number_id, by signed webhooks.
_ANY_CLOUD_NUMBER = (WebRoute(DEFAULT_PROVIDER, None, signed=True),)


@dataclass(frozen=True)
class WebSettings:
    """Everything the `web` process needs, validated."""

    app_secrets: tuple[str, ...] = field(repr=False)
    verify_token: str | None = field(repr=False)
    """None when no account receives signed Cloud API webhooks (no handshake to answer)."""
    redis_url: str = DEFAULT_REDIS_URL
    sweep_stalled_after: int = 600
    routes: tuple[WebRoute, ...] = _ANY_CLOUD_NUMBER
    app_names: tuple[str, ...] = ()
    """The Meta app owning each of `app_secrets` (accounts file); empty: one account, any."""
    reply_max_per_webhook: int = REPLY_MAX_PER_WEBHOOK
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds a request's whole body may take to arrive; past it, 408 and the connection
    closed."""
    metrics_port: int = DEFAULT_WEB_METRICS_PORT
    """Where the gunicorn master serves the metrics; 0: not at all."""
    fanout_batch: int = DEFAULT_FANOUT_BATCH
    """Media (and replies) per fan-out task: a request holding more is published as several."""
    lookup: LookupSettings | None = None
    """The read API (GET /v1/media/...); None: off, no key configured."""

    @cached_property
    def accounts(self) -> WebAccounts:
        """The accounts this deployment receives webhooks for."""
        return WebAccounts(self.routes, self.app_secrets, self.app_names)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WebSettings:
        """Read and validate the web's variables; raise ConfigError naming the first bad one."""
        accounts = web_accounts(environ)
        signed = any(r.signed and not r.webhook_token for r in accounts.routes)
        return cls(
            app_secrets=accounts.app_secrets,
            verify_token=v.WHATSAPP_VERIFY_TOKEN.read(environ)
            if signed
            else v.WHATSAPP_VERIFY_TOKEN.read_optional(environ),
            redis_url=v.REDIS_URL.read(environ),
            sweep_stalled_after=v.SWEEP_STALLED_AFTER.read(environ),
            routes=accounts.routes,
            app_names=accounts.app_names,
            reply_max_per_webhook=v.REPLY_MAX_PER_WEBHOOK.read(environ),
            body_timeout=v.WEBHOOK_BODY_TIMEOUT.read(environ),
            metrics_port=v.WEB_METRICS_PORT.read(environ),
            fanout_batch=v.FANOUT_BATCH.read(environ),
            lookup=_lookup(environ),
        )


def _lookup(environ: Mapping[str, str]) -> LookupSettings | None:
    """The read API's settings; its S3 settings are read only when a key is configured."""
    path = v.WHATSAPP_ACCOUNTS_FILE.read_optional(environ)
    return lookup_settings(environ, load_accounts_file(path) if path else None)
