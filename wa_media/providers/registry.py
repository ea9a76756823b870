"""Building an account's provider client from its Connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import requests

from wa_media.core.provider import Connection, Provider, ProviderKind
from wa_media.providers.cloud import GraphClient
from wa_media.providers.d360 import D360Client
from wa_media.providers.onprem import OnPremClient
from wa_media.stores.gate import MetaGate

__all__ = ["make_provider"]

_FACTORIES: Mapping[ProviderKind, Callable[..., Provider]] = MappingProxyType(
    {"cloud": GraphClient.create, "360dialog": D360Client.create, "onprem": OnPremClient.create}
)


def make_provider(
    connection: Connection,
    *,
    max_media_bytes: int,
    gate: MetaGate | None = None,
    session: requests.Session | None = None,
) -> Provider:
    """The client of `connection.kind`, on one reused session (a new one unless given)."""
    factory = _FACTORIES[connection.kind]
    return factory(connection, max_media_bytes=max_media_bytes, gate=gate, session=session)
