"""What each provider's module (cloud.py, d360.py, onprem.py) declares of itself: its plugin.

A plugin names its kind, its API and its client class, and reads its accounts
(wa_media.config.accounts.ProviderAccounts: its variables, its fields of the accounts file and
their checks, whether Meta signs its webhooks). Its client's capabilities beyond what every
provider has (wa_media.core.provider.Provider) are the protocols the client class implements:
MediaUrls, ResumableUploads. The registry (registry.py) holds every kind's plugin.
"""

from __future__ import annotations

from typing import Protocol

from wa_media.config.accounts import ProviderAccounts
from wa_media.core.provider import MediaUrls, ResumableUploads
from wa_media.providers.apiclient import ApiClient

__all__ = ["ProviderPlugin", "capabilities"]


class ProviderPlugin(ProviderAccounts, Protocol):
    """Everything the service knows of one provider."""

    title: str
    """Its API's name in messages: "the {title} has no media URLs"."""
    client: type[ApiClient]
    """Its client class, whose protocols tell its capabilities (`capabilities`); the registry
    builds clients with its `create`."""


def capabilities(plugin: ProviderPlugin) -> frozenset[str]:
    """The optional protocols its client implements, by name: "media_urls" (MediaUrls),
    "resumable_uploads" (ResumableUploads)."""
    found = set()
    if issubclass(plugin.client, MediaUrls):
        found.add("media_urls")
    if issubclass(plugin.client, ResumableUploads):
        found.add("resumable_uploads")
    return frozenset(found)
