"""Which download URLs may receive the access token."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["is_allowed_media_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_allowed_media_url(url: str, allowed: tuple[str, ...]) -> bool:
    """True when `url` is http(s) on an allowed `host` (default port) or `host:port` entry."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return False
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host
    default_port = port is None or port == _DEFAULT_PORTS[parts.scheme]
    if default_port and (host in allowed or shown in allowed):
        return True
    return port is not None and f"{shown}:{port}" in allowed
