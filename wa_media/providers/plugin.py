"""What each provider's module (cloud.py, d360.py, onprem.py) declares of itself: its plugin.

A plugin names its kind and its API, builds its client, and reads its accounts
(wa_media.config.accounts.ProviderAccounts: its variables, its fields of the accounts file and
their checks, whether Meta signs its webhooks). Its client's capabilities beyond what every
provider has (wa_media.core.provider.Provider) are the protocols the client class implements:
MediaUrls, ResumableUploads. The registry (registry.py) holds every kind's plugin.
"""

from __future__ import annotations

from typing import Protocol

import requests

from wa_media.config.accounts import ProviderAccounts
from wa_media.core.provider import Connection, MediaUrls, Provider, ResumableUploads
from wa_media.stores.gate import MetaGate

__all__ = ["ProviderPlugin", "capabilities"]


class ProviderPlugin(ProviderAccounts, Protocol):
    """Everything the service knows of one provider."""

    title: str
    """Its API's name in messages: "the {title} has no media URLs"."""
    client: type
    """Its client class, whose protocols tell its capabilities (`capabilities`)."""

    def make_client(
        self,
        connection: Connection,
        *,
        max_media_bytes: int,
        gate: MetaGate | None = None,
        session: requests.Session | None = None,
    ) -> Provider:
        """A client of `connection`, on its own session (or the given one)."""


def capabilities(plugin: ProviderPlugin) -> frozenset[str]:
    """The optional protocols its client implements, by name: "media_urls" (MediaUrls),
    "resumable_uploads" (ResumableUploads)."""
    found = set()
    if issubclass(plugin.client, MediaUrls):
        found.add("media_urls")
    if issubclass(plugin.client, ResumableUploads):
        found.add("resumable_uploads")
    return frozenset(found)
