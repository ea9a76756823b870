"""SHA-256 digests as Meta writes them: base64 in webhooks, hex in media look-ups."""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["normalise_sha256"]

_HEX = re.compile(r"[0-9a-fA-F]{64}")


def normalise_sha256(value: str) -> str:
    """Return the lower-case hex form of a SHA-256 given in hex or base64; raise ValueError."""
    value = value.strip()
    if _HEX.fullmatch(value):
        return value.lower()
    try:
        # Meta writes standard base64; accept the URL-safe alphabet too.
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("not a SHA-256 digest in hex or base64")
    return raw.hex()
