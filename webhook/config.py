"""The `web` process's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from wa_media.config.accounts import WebAccounts, WebRoute
from wa_media.config.env import positive_int, read, redis_url, tcp_port, text
from wa_media.config.settings import DEFAULT_REDIS_URL
from wa_media.core.provider import DEFAULT_PROVIDER
from wa_media.providers.accounts import web_accounts
from webhook.publisher import DEFAULT_FANOUT_BATCH, MAX_FANOUT_BATCH

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_WEB_METRICS_PORT",
    "MAX_BODY_BYTES",
    "REPLY_MAX_PER_WEBHOOK",
    "WebSettings",
    "body_timeout",
]

# Meta sends at most 3 MB; anything past 4 MiB is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Meta's 3 MB take well under a second between data centres; a client slower than this is
# holding a connection, not delivering a webhook.
DEFAULT_BODY_TIMEOUT = 5.0
DEFAULT_WEB_METRICS_PORT = 9807
# The 131052 warnings one webhook may owe; the others are dropped (`request_cap`).
REPLY_MAX_PER_WEBHOOK = 10


def body_timeout(value: str) -> float:
    """Seconds, more than 0 and at most 300 (a fraction is allowed)."""
    seconds = float(value)
    if not 0 < seconds <= 300:
        raise ValueError(f"expected more than 0 and at most 300 seconds, got {value}")
    return seconds


# Without settings read: any phone_number_id, by signed webhooks.
_ANY_CLOUD_NUMBER = (WebRoute(DEFAULT_PROVIDER, None, signed=True),)


def _fanout_batch(value: str) -> int:
    number = positive_int(value)
    if number > MAX_FANOUT_BATCH:
        raise ValueError(f"expected 1 to {MAX_FANOUT_BATCH} media per fan-out task")
    return number


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
            verify_token=read(environ, "WHATSAPP_VERIFY_TOKEN", text)
            if signed
            else read(environ, "WHATSAPP_VERIFY_TOKEN", lambda v: v or None, ""),
            redis_url=read(environ, "REDIS_URL", redis_url, DEFAULT_REDIS_URL),
            sweep_stalled_after=read(environ, "SWEEP_STALLED_AFTER", positive_int, "600"),
            routes=accounts.routes,
            app_names=accounts.app_names,
            reply_max_per_webhook=read(
                environ, "REPLY_MAX_PER_WEBHOOK", positive_int, str(REPLY_MAX_PER_WEBHOOK)
            ),
            body_timeout=read(environ, "WEBHOOK_BODY_TIMEOUT", body_timeout, "5"),
            metrics_port=read(environ, "WEB_METRICS_PORT", tcp_port, str(DEFAULT_WEB_METRICS_PORT)),
            fanout_batch=read(environ, "FANOUT_BATCH", _fanout_batch, str(DEFAULT_FANOUT_BATCH)),
        )
