"""Reading settings from environment variables, failing fast with the variable's name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from wa_media.core.allowlist import is_loopback
from wa_media.core.errors import ConfigError
from wa_media.core.provider import PROVIDER_KINDS, ProviderKind

T = TypeVar("T")

# The exit status of every process (web, worker, beat, wa-media) that stops at start-up
# because a setting is missing or invalid.
CONFIG_ERROR = 2

__all__ = [
    "CONFIG_ERROR",
    "INSECURE_HTTP_VARIABLE",
    "base_url",
    "comma_list",
    "flag",
    "host_list",
    "phone_number_id",
    "positive_int",
    "provider_kind",
    "read",
    "redis_url",
    "s3_prefix",
    "tcp_port",
    "text",
    "usable_phone_number_id",
    "webhook_token",
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


# Lets http:// base URLs and download URLs to hosts other than loopback receive a credential:
# for development only (a simulator in another container).
INSECURE_HTTP_VARIABLE = "ALLOW_INSECURE_HTTP"
_PHONE_NUMBER_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Long enough that guessing one is hopeless, short enough to fit any webhook URL field.
_MIN_WEBHOOK_TOKEN = 16


def base_url(value: str, *, insecure_http: bool = False) -> str:
    """Check an http(s) base URL and drop its trailing slash.

    A base URL receives a credential with every request: `http://` is refused unless its host
    is loopback (nothing leaves the machine) or `insecure_http` allows it.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    if parts.scheme == "http" and not insecure_http and not is_loopback(parts.hostname or ""):
        raise ValueError(
            "http:// would send the credential in clear text: use https:// (http:// is taken "
            f"for a loopback host only, or anywhere with {INSECURE_HTTP_VARIABLE}=true, for "
            "development)"
        )
    return value.rstrip("/")


_HOST_ENTRY = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?")


def host_list(value: str) -> tuple[str, ...]:
    """Check a comma-separated list of `host` or `host:port` entries (HTTPS on 443, or on that
    port; an IPv6 address in brackets)."""
    hosts = tuple(host.lower() for host in comma_list(value))
    for host in hosts:
        entry = _HOST_ENTRY.fullmatch(host)
        if entry is None or not 0 < int(entry.group(1) or 443) <= 65535:
            raise ValueError(f"{host!r} is not a host or host:port")
    return hosts


def webhook_token(value: str) -> str:
    """A secret path token: URL-safe characters, long enough not to be guessed."""
    if len(value) < _MIN_WEBHOOK_TOKEN or not re.fullmatch(r"[A-Za-z0-9_.~-]+", value):
        raise ValueError(
            f"expected at least {_MIN_WEBHOOK_TOKEN} characters of A-Z a-z 0-9 _ . ~ -"
        )
    return value


def usable_phone_number_id(value: str) -> bool:
    """Whether an id may stand in S3 keys: 1 to 128 of A-Z a-z 0-9 _ . -, not dots alone (read
    as "this folder" or "the parent" by consumers that map keys to paths)."""
    return bool(_PHONE_NUMBER_ID.fullmatch(value)) and set(value) != {"."}


def phone_number_id(value: str) -> str:
    """An id usable in S3 keys (docs/s3-archive.md)."""
    if not usable_phone_number_id(value):
        raise ValueError("expected 1 to 128 characters of A-Z a-z 0-9 _ . -, not dots alone")
    return value


def flag(value: str) -> bool:
    """`true`/`false` and their usual spellings."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def provider_kind(value: str) -> ProviderKind:
    """One of the supported providers."""
    for kind in PROVIDER_KINDS:
        if value == kind:
            return kind
    raise ValueError(f"expected one of {', '.join(PROVIDER_KINDS)}")
