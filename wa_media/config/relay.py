"""Reading the destinations of relay and archive events: the single account's variables, or
the accounts file's `destinations:` with each account's `relay_to` and `events_to`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wa_media.config import variables as v
from wa_media.config.destinations import Destination, signing_secret
from wa_media.core.errors import ConfigError

__all__ = [
    "DestinationFields",
    "EnvDestinations",
    "check_delete_with_relay",
    "env_destinations",
    "file_destinations",
]

_FILE = v.WHATSAPP_ACCOUNTS_FILE.name


@dataclass(frozen=True)
class EnvDestinations:
    """The single account's destinations, from RELAY_DESTINATIONS and EVENT_ENDPOINTS."""

    directory: Mapping[str, Destination] = field(default_factory=dict)
    relay_to: tuple[str, ...] = ()
    events_to: tuple[str, ...] = ()


def env_destinations(environ: Mapping[str, str], *, events: bool = True) -> EnvDestinations:
    """RELAY_DESTINATIONS (signed with RELAY_SIGNING_SECRET) and, when `events` (the worker,
    `wa-media`), EVENT_ENDPOINTS (signed with EVENT_SIGNING_SECRET, required with them);
    ConfigError names the variable."""
    relay = v.RELAY_DESTINATIONS.read_optional(environ) or ()
    endpoints = (v.EVENT_ENDPOINTS.read_optional(environ) or ()) if events else ()
    relay_secret = v.RELAY_SIGNING_SECRET.read_optional(environ) if events else None
    event_secret = v.EVENT_SIGNING_SECRET.read(environ) if endpoints else None
    directory: dict[str, Destination] = {}
    for name, url in relay:
        directory[name] = Destination(name, url, relay_secret)
    for name, url in endpoints:
        if name in directory:
            raise ConfigError(
                f"{v.EVENT_ENDPOINTS.name} is invalid: {name} is already the name of a relay "
                f"destination in {v.RELAY_DESTINATIONS.name}: give each its own"
            )
        directory[name] = Destination(name, url, event_secret)
    return EnvDestinations(
        directory, tuple(name for name, _ in relay), tuple(name for name, _ in endpoints)
    )


class DestinationFields(Protocol):
    """An accounts file's destination entry (wa_media.config.accounts.DestinationEntry)."""

    @property
    def url(self) -> str: ...
    @property
    def secret(self) -> str | None: ...
    @property
    def secret_env(self) -> str | None: ...


def file_destinations(
    entries: Mapping[str, DestinationFields], environ: Mapping[str, str]
) -> dict[str, Destination]:
    """The accounts file's destinations, their `secret_env` read; ConfigError names the
    entry."""
    resolved = {}
    for name, entry in entries.items():
        secret = entry.secret
        if entry.secret_env is not None:
            secret = environ.get(entry.secret_env, "").strip()
            where = f"destinations.{name}.secret_env"
            if not secret:
                raise ConfigError(f"{_FILE}: {where} names {entry.secret_env}, which is not set")
            try:
                signing_secret(secret)
            except ValueError as exc:
                raise ConfigError(f"{_FILE}: {where}: {entry.secret_env}: {exc}") from None
        resolved[name] = Destination(name, entry.url, secret)
    return resolved


def check_delete_with_relay(
    deleting_and_relaying: Iterable[str], environ: Mapping[str, str]
) -> None:
    """Refuse DELETE_AFTER_ARCHIVE for accounts whose webhooks are relayed (a destination may
    still need to download the media from the provider), unless DELETE_WITH_RELAY_ACCEPTED."""
    accounts = sorted(deleting_and_relaying)
    if accounts and not v.DELETE_WITH_RELAY_ACCEPTED.read(environ):
        raise ConfigError(
            f"{v.DELETE_AFTER_ARCHIVE.name} is refused with relay destinations (accounts: "
            f"{', '.join(accounts)}): a destination may still need to download the media; set "
            f"{v.DELETE_WITH_RELAY_ACCEPTED.name}=true to accept it"
        )
