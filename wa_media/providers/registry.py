"""Every provider kind's plugin (plugin.py), and building an account's client from its
Connection. A new provider is one module and one entry here (docs/development.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import requests

from wa_media.core.provider import Connection, Provider, ProviderKind
from wa_media.providers import cloud, d360, onprem
from wa_media.providers.plugin import ProviderPlugin
from wa_media.stores.gate import MetaGate

__all__ = ["PROVIDERS", "make_provider", "plugin_of"]

PROVIDERS: Mapping[ProviderKind, ProviderPlugin] = MappingProxyType(
    {plugin.kind: plugin for plugin in (cloud.PLUGIN, d360.PLUGIN, onprem.PLUGIN)}
)
"""Every kind's plugin, by kind (wa_media.core.provider.PROVIDER_KINDS)."""


def plugin_of(kind: ProviderKind) -> ProviderPlugin:
    """The plugin of a provider kind."""
    return PROVIDERS[kind]


def make_provider(
    connection: Connection,
    *,
    max_media_bytes: int,
    gate: MetaGate | None = None,
    session: requests.Session | None = None,
) -> Provider:
    """The client of `connection.kind`, on one reused session (a new one unless given)."""
    return PROVIDERS[connection.kind].client.create(
        connection, max_media_bytes=max_media_bytes, gate=gate, session=session
    )
