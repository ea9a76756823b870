"""Reading settings from environment variables, failing fast with the variable's name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

__all__ = ["ConfigError", "comma_list", "positive_int", "read", "redis_url", "text"]


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


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
    """Check a Redis URL's scheme."""
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return value
