"""Provider clients pointed at the test simulator, and media stored the way each one names it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from graphsim import Simulator, SimulatorClient
from wa_media.core.provider import Connection, Provider, ProviderKind
from wa_media.providers.registry import make_provider

PHONE = "106540352242922"
APP = "1234567890"
LIMIT = 10 * 1024 * 1024
CREDENTIALS: dict[ProviderKind, str] = {
    "cloud": "sim-token",
    "360dialog": "d360-key",
    "onprem": "onprem-token",
}


def connection(sim: Simulator, kind: ProviderKind, credential: str | None = None) -> Connection:
    """The simulator's endpoint of a provider, with its default credential unless given."""
    secret = CREDENTIALS[kind] if credential is None else credential
    if kind == "cloud":
        return Connection(
            kind,
            sim.url,
            secret,
            api_version=sim.version,
            media_hosts=(sim.media_host,),
            app_id=APP,
        )
    base = sim.d360_url if kind == "360dialog" else sim.onprem_url
    return Connection(kind, base, secret)


@contextmanager
def provider_for(
    sim: Simulator, kind: ProviderKind, credential: str | None = None, *, limit: int = LIMIT
) -> Iterator[Provider]:
    """A provider client on its own session, closed afterwards."""
    with requests.Session() as session:
        yield make_provider(
            connection(sim, kind, credential), max_media_bytes=limit, session=session
        )


def add_media(client: SimulatorClient, kind: ProviderKind, data: bytes, mime_type: str) -> str:
    """Store a media as the provider names them (On-Premises ids are UUIDs); return its id."""
    media_id = str(uuid.uuid4()) if kind == "onprem" else None
    return client.add_media(data, mime_type, media_id=media_id, phone_number_id=PHONE).id


def provider_fixture(
    kind: ProviderKind,
) -> Callable[[Simulator, SimulatorClient], Iterator[Provider]]:
    """A fixture of one provider's client: `cloud = provider_fixture("cloud")` in a module."""

    @pytest.fixture
    def fixture(sim: Simulator, client: SimulatorClient) -> Iterator[Provider]:
        with provider_for(sim, kind) as provider:
            yield provider

    return fixture


def pdf_file(folder: Path, data: bytes = b"%PDF-1.7 ...") -> Path:
    """A small file to upload, `doc.pdf` in `folder`."""
    path = folder / "doc.pdf"
    path.write_bytes(data)
    return path
