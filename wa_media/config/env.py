"""Reading settings from environment variables, failing fast with the variable's name."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from wa_media.core.errors import ConfigError

T = TypeVar("T")

# The exit status of every process (web, worker, beat, wa-media) that stops at start-up
# because a setting is missing or invalid.
CONFIG_ERROR = 2

__all__ = [
    "CONFIG_ERROR",
    "comma_list",
    "positive_int",
    "read",
    "redis_url",
    "s3_prefix",
    "tcp_port",
    "text",
]


def read(
    environ: Mapping[str, str], name: str, convert: Callable[[str], T], default: str | None = None
) -> T:
    """Return `convert` of the variable, or of `default` when unset; None means required."""
    raw = environ.get(name, "").strip()
    if not raw:
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        raw = default
    try:
        return convert(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is invalid: {exc}") from None


def text(value: str) -> str:
    """Keep a string as it is."""
    return value


def comma_list(value: str) -> tuple[str, ...]:
    """Convert `a, b,c` into a non-empty tuple of stripped items."""
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise ValueError("expected at least one comma-separated value")
    return items


def positive_int(value: str) -> int:
    """Convert a whole number greater than zero."""
    number = int(value)
    if number <= 0:
        raise ValueError(f"expected a positive whole number, got {number}")
    return number


def redis_url(value: str) -> str:
    """Check a Redis URL as redis-py and kombu will read it; the message never quotes it (it may
    hold a password)."""
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    if any(unicodedata.category(c) == "Cc" or c.isspace() for c in value):
        raise ValueError("the URL holds spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if value.startswith("unix://"):
        if not parts.path:
            raise ValueError("the socket's path is missing")
        return value
    if port == 0:
        raise ValueError("the port is not a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError("the database (the path after the host) must be a number, e.g. /0")
    return value


def s3_prefix(value: str) -> str:
    """An S3 key prefix: surrounding slashes trimmed; no empty, `.` or `..` segment, no control
    character (consumers that map keys to paths would read them as other folders)."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("expected no control characters")
    prefix = value.strip("/")
    if not prefix:
        return prefix
    for segment in prefix.split("/"):
        if segment == "":
            raise ValueError(f"{prefix!r} has an empty segment (two slashes in a row)")
        if segment in (".", ".."):
            raise ValueError(f"{prefix!r} has a {segment!r} segment")
        if segment != segment.strip():
            raise ValueError(f"{prefix!r} has a segment with surrounding spaces")
    return prefix


def tcp_port(value: str) -> int:
    """A TCP port, or 0 for "off"."""
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError(f"expected a TCP port from 0 (off) to 65535, got {number}")
    return number
