"""Which URLs may receive a credential: HTTPS to an allowed host and port; plain HTTP only to a
loopback host (nothing leaves the machine), or anywhere a development setting allows it."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

__all__ = ["carries_in_clear", "host_entry", "is_allowed_media_url", "is_loopback"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# An allowlist entry without a port names HTTPS's.
_ENTRY_PORT = 443


def is_loopback(host: str) -> bool:
    """Whether `host` (a name, an address, or an address in brackets) is this machine's."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parts(url: str) -> tuple[SplitResult, str, int] | None:
    """The URL's parts, its host (lowercase) and its port (the scheme's when it names none)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return None
    return parts, host.lower(), port if port is not None else _DEFAULT_PORTS[parts.scheme]


def carries_in_clear(url: str, *, insecure_http: bool = False) -> bool:
    """Whether a request to `url` would carry its credential in clear text off this machine:
    `http://` to a host that is not loopback, unless `insecure_http` allows it."""
    found = _parts(url)
    if found is None:
        return False
    parts, host, _ = found
    return parts.scheme == "http" and not insecure_http and not is_loopback(host)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def host_entry(url: str) -> str:
    """The `host:port` allowlist entry of `url` (its scheme's port when it names none)."""
    found = _parts(url)
    if found is None:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    _, host, port = found
    return f"{_shown(host)}:{port}"


def is_allowed_media_url(
    url: str, allowed: tuple[str, ...], *, insecure_http: bool = False
) -> bool:
    """True when `url` may receive the credential: an entry of `allowed` names its host and
    port (`host` alone means port 443), it carries no user info, and it is `https://`, or
    `http://` to a loopback host (any host with `insecure_http`)."""
    found = _parts(url)
    if found is None:
        return False
    parts, host, port = found
    if parts.username or parts.password or carries_in_clear(url, insecure_http=insecure_http):
        return False
    shown = _shown(host)
    if f"{shown}:{port}" in allowed:
        return True
    return port == _ENTRY_PORT and (host in allowed or shown in allowed)
