"""The Flask application factory for `web`."""

from __future__ import annotations

import os
import sys

from flask import Flask

from wa_media.config.variables import LOG_LEVEL
from wa_media.core.errors import ConfigError
from wa_media.observability.logs import configure_logging, register_secrets
from wa_media.observability.metrics import web_metrics
from wa_media.stores.broker import make_celery
from wa_media.stores.lookup_rate import LookupRate
from wa_media.stores.records import MediaStateStore, ReplyLedger
from wa_media.stores.redis_client import connect as connect_redis
from wa_media.stores.s3 import make_s3_client
from webhook import lookup
from webhook.config import WebSettings
from webhook.metrics import count_request
from webhook.payload import SKIP_REASONS
from webhook.publisher import Publisher
from webhook.views import bp

__all__ = ["create_app"]

APP_LOAD_ERROR = 4


def create_app(settings: WebSettings | None = None) -> Flask:
    """Build the webhook receiver; without `settings`, read them from the environment."""
    configure_logging(LOG_LEVEL.read(os.environ))
    if settings is None:
        try:
            settings = WebSettings.from_env()
        except ConfigError as exc:
            print(f"web: configuration error: {exc}", file=sys.stderr, flush=True)
            # 4 is gunicorn's "app failed to load": the master stops instead of respawning the
            # worker forever.
            raise SystemExit(APP_LOAD_ERROR) from None
    register_secrets(
        [*settings.app_secrets, *settings.accounts.secrets, settings.verify_token or ""]
    )
    if settings.lookup is not None:
        register_secrets(settings.lookup.keys.secrets)

    app = Flask(__name__)
    app.extensions["wa.settings"] = settings
    redis = connect_redis(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
    state = MediaStateStore(redis, stall_after=settings.sweep_stalled_after)
    ledger = ReplyLedger(redis, stall_after=settings.sweep_stalled_after)
    app.extensions["wa.publisher"] = Publisher(
        make_celery(settings.redis_url), state, ledger, batch_size=settings.fanout_batch
    )
    app.extensions["wa.redis"] = redis
    app.register_blueprint(bp)
    if settings.lookup is not None:
        # The read API: off (its paths answer 404) unless a key is configured.
        app.extensions["wa.lookup"] = lookup.Lookup(
            settings.lookup,
            make_s3_client(settings.lookup.endpoint_url),
            LookupRate(redis, settings.lookup.rate_limit),
        )
        app.register_blueprint(lookup.bp)
    counters = web_metrics()  # made now, in this process: after gunicorn's config chose where
    for reason in SKIP_REASONS:  # every reason is served from the start, at zero
        counters.skipped.labels(reason=reason)
    app.after_request(count_request)
    return app
