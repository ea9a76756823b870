"""Verifying Meta's `X-Hub-Signature-256` over the raw request body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from wa_media.core.errors import InvalidSignature, MissingSignature

__all__ = ["sign", "verify"]

_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value Meta sends for `body` under `secret`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Iterable[str]) -> tuple[int, ...]:
    """The positions in `secrets` of every secret under which `header` signs `body` (in order,
    at least one); raise a SignatureError if none does.

    Which secret signed tells which Meta app sent the webhook, and so which accounts it may
    speak for (wa_media/config/accounts.py).
    """
    if header is None or header == "":
        raise MissingSignature("no X-Hub-Signature-256 header")
    if not header.startswith(_PREFIX) or len(header) != len(_PREFIX) + 64:
        raise InvalidSignature("malformed X-Hub-Signature-256 header")
    given = header[len(_PREFIX) :].lower().encode("ascii", "replace")
    matched: list[int] = []
    # Every secret is tried, so timing reveals nothing about which one (or whether one) matched.
    for position, secret in enumerate(secrets):
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(expected, given):
            matched.append(position)
    if not matched:
        raise InvalidSignature("signature does not match any configured app secret")
    return tuple(matched)
