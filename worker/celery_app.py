"""The worker process's Celery application: `celery -A worker` for worker and beat.

Importing this module reads REDIS_URL and builds the app; a bad URL stops the process here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from celery.signals import setup_logging

from wa_media.config.env import CONFIG_ERROR
from wa_media.config.variables import LOG_LEVEL, REDIS_URL
from wa_media.core.errors import ConfigError
from wa_media.observability.logs import configure_logging
from wa_media.stores.broker import make_celery

__all__ = ["app"]


@setup_logging.connect
def _structured_logs(**_: Any) -> None:
    # Connected, this replaces Celery's own logging set-up in worker and beat alike.
    configure_logging(LOG_LEVEL.read(os.environ))


def _process() -> str:
    """`beat`, `worker`, or the program's name (`wa-media`), for a configuration error."""
    args = sys.argv[1:]
    if "beat" in args:
        return "beat"
    if args.count("worker") >= 2:  # celery -A worker worker
        return "worker"
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return "web" if name == "gunicorn" else name


def _broker_url() -> str:
    try:
        return REDIS_URL.read(os.environ)
    except ConfigError as exc:
        # Every process imports this module before it reads its other settings (`celery -A
        # worker` for worker and beat, wa-media): a bad URL stops it here, with one line.
        print(f"{_process()}: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR) from None


app = make_celery(_broker_url())
