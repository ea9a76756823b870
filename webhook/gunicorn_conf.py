"""Gunicorn's settings for `web` (Procfile: `--config python:webhook.gunicorn_conf`).

The master checks the configuration once, before any worker is forked: a bad variable stops
`web` with one line and exit status 2. It then serves the metrics on WEB_METRICS_PORT from a
thread of its own, apart from the webhook's port and from the workers that answer webhooks.

Gunicorn runs several worker processes: each counts in files of one directory
(prometheus_client's multiprocess mode), and the master's scrape sums them all.

Paths of `POST /webhook/<token>` carry a secret: gunicorn's access and error logs write them
with the token replaced (`logger_class`).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import multiprocess, start_http_server

from wa_media.config.env import CONFIG_ERROR
from wa_media.config.variables import LOG_LEVEL, PROMETHEUS_MULTIPROC_DIR
from wa_media.core.errors import ConfigError
from wa_media.observability.logs import configure_logging, get_logger
from wa_media.observability.metrics import exposition_registry, use_multiprocess_dir
from wa_media.stores.redis_client import connect as connect_redis
from webhook.config import WebSettings
from webhook.redact import RedactingLogger

logger_class = RedactingLogger

# The gevent workers (Procfile) patch the standard library when they start, after the fork; the
# modules this file brought in first (the worker package: kombu, redis.asyncio, urllib3,
# botocore) keep their direct imports of ssl unpatched. `web` makes no TLS connection through
# those but S3's (its read API), whose client builds its contexts from gevent's SSLContext
# (wa_media/stores/s3.py, make_s3_client); redis-py's sockets and TLS are made through the
# patched modules.
warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")


@dataclass
class _Master:
    server: WSGIServer | None = None


_MASTER = _Master()


def _fail(message: str) -> None:
    print(f"web: configuration error: {message}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR)


def on_starting(server: Any) -> None:
    """In the master, before any worker is forked: the settings checked, an empty directory
    for the workers' counts, and the metrics served."""
    try:
        configure_logging(LOG_LEVEL.read(os.environ))
        settings = WebSettings.from_env()
        base = PROMETHEUS_MULTIPROC_DIR.read_optional(os.environ)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    directory = use_multiprocess_dir("web", base)
    if settings.metrics_port == 0:
        return
    # Imported once the settings are known good: it loads the Celery app, which reads REDIS_URL.
    from webhook.metrics import DeliveryCollector, StateCollector

    redis = connect_redis(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    registry = exposition_registry(StateCollector(redis), DeliveryCollector(redis))
    try:
        _MASTER.server, _thread = start_http_server(settings.metrics_port, registry=registry)
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        _fail(f"WEB_METRICS_PORT={settings.metrics_port} cannot be served: {exc.strerror}")
    get_logger(__name__).info("metrics_served", port=settings.metrics_port)


def post_fork(server: Any, worker: Any) -> None:
    """A worker inherits the master's metrics socket: only the master answers scrapes, and the
    port must close when the master goes."""
    if _MASTER.server is not None:
        _MASTER.server.socket.close()
        _MASTER.server = None


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
