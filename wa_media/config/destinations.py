"""Where webhooks are relayed and archive events delivered: named destinations, their URLs and
signing secrets, from the single-account variables or the accounts file's `destinations:`.

A destination's name labels its metrics and its records; its URL never does (it may hold a
secret of its own, a token in the path or the query). URLs are HTTPS; `http://` is taken for a
loopback host only (development). Redirects are never followed (wa_media/stores/delivery_http.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wa_media.core.allowlist import is_loopback

__all__ = [
    "DESTINATION_NAME",
    "Destination",
    "destination_list",
    "destination_url",
    "signing_secret",
]

DESTINATION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)


def destination_url(value: str) -> str:
    """An https:// URL, or http:// to a loopback host (127.0.0.0/8, ::1, localhost);
    ValueError otherwise (without quoting the URL: it may hold a secret)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            "http:// is taken for a loopback host only (127.0.0.0/8, ::1, localhost): use https://"
        )
    return value.strip()


def signing_secret(value: str) -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of at least 24 random bytes."""
    if not value.startswith(_SECRET_PREFIX):
        raise ValueError(f"expected {_SECRET_PREFIX} and base64 (Standard Webhooks)")
    try:
        key = base64.b64decode(value[len(_SECRET_PREFIX) :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError(f"expected {_SECRET_PREFIX} and base64 (Standard Webhooks)") from None
    if len(key) < 24:
        raise ValueError("the secret holds fewer than 24 bytes: make one of 32 random bytes")
    return value


def destination_list(value: str) -> tuple[tuple[str, str], ...]:
    """`name=url,name=url`: each name 1 to 64 of A-Z a-z 0-9 _ . -, once; each URL as
    `destination_url` checks it."""
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, equals, url = item.partition("=")
        name = name.strip()
        if not equals or not DESTINATION_NAME.fullmatch(name):
            raise ValueError("expected name=url entries (names of A-Z a-z 0-9 _ . -)")
        if any(name == seen for seen, _ in pairs):
            raise ValueError(f"destination {name} is named twice")
        try:
            pairs.append((name, destination_url(url)))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if not pairs:
        raise ValueError("expected at least one name=url")
    return tuple(pairs)


@dataclass(frozen=True)
class Destination:
    """A named consumer: its URL and the secret signing what it is sent per Standard Webhooks
    (None: relayed bodies go with the provider's signature alone)."""

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
