"""Structured logging for every process: JSON lines, or readable text on a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = [
    "bind_task_fields",
    "configure_logging",
    "get_logger",
    "milliseconds",
    "register_secrets",
    "since",
    "task_context",
]

_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember values that must never reach a log line (tokens, app secrets)."""
    _secrets.update(value for value in values if len(value) >= 4)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def _redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A last line of defence: code never logs secrets on purpose, but exception texts may
    # quote a URL or header.
    if not _secrets:
        return event_dict
    return {key: _redact(value) for key, value in event_dict.items()}


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's own line writer, with the name `add_logger_name` reads."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _named_logger(*args: Any) -> _NamedWriteLogger:
    return _NamedWriteLogger(str(args[0]) if args else "")


def configure_logging(level: str = "INFO") -> None:
    """Render structlog's events and the standard library's records as one JSON (or console) stream.

    The service's own events go straight from structlog to standard error: through the standard
    library's records, handler and formatter a line cost about two and a half times as much,
    and `web` writes two lines per webhook, a worker several per media. Celery's, gunicorn's and
    the libraries' records take the standard library's path to the same renderer.

    `level` is LOG_LEVEL's, which the processes read (wa_media/config/variables.py).
    """
    name = level.upper()
    number = logging.getLevelNamesMapping().get(name)
    if number is None:
        raise ValueError(f"LOG_LEVEL is invalid: {name!r} is not a logging level")
    renderer: Any
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _redact_secrets, renderer],
        logger_factory=_named_logger,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(number)
    # urllib3's DEBUG lines print each request's path and query (a relay destination's token,
    # a signed download URL) where redaction, which knows whole secrets, cannot find them.
    logging.getLogger("urllib3").setLevel(max(number, logging.INFO))


def get_logger(name: str) -> Any:
    """A structured logger named after its module (structlog's filtering bound logger)."""
    return structlog.get_logger(name)


@contextmanager
def task_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` (ids of the task and its media) to every log line until the block ends.

    Bound in contextvars, so each thread of a threads pool has its own; cleared at both ends,
    so that nothing of one task leaks into the next one the same thread runs.
    """
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()


def bind_task_fields(**fields: Any) -> None:
    """Add `fields` to what task_context bound, until its block ends."""
    structlog.contextvars.bind_contextvars(**fields)


def milliseconds(seconds: float) -> float:
    """A duration for a log line's `duration_ms`."""
    return round(seconds * 1000, 2)


def since(started: float) -> float:
    """Milliseconds since `started`, a time.perf_counter() reading."""
    return milliseconds(time.perf_counter() - started)
