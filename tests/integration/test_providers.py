"""The contract every provider client keeps, checked against each simulated dialect over HTTP."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import PHONE, add_media, provider_for
from wa_media.core.errors import (
    CredentialsError,
    MediaRejected,
    PermanentError,
    TemporaryError,
    ThrottledError,
    TooBig,
)
from wa_media.core.provider import PROVIDER_KINDS, Provider, ProviderKind
from wa_media.providers.cloud import GraphClient
from wa_media.providers.d360 import D360Client
from wa_media.providers.onprem import OnPremClient
from wa_media.providers.transfer import USER_AGENT


@pytest.fixture(params=PROVIDER_KINDS)
def kind(request: pytest.FixtureRequest) -> ProviderKind:
    chosen: ProviderKind = request.param
    return chosen


@pytest.fixture
def provider(sim: Simulator, client: SimulatorClient, kind: ProviderKind) -> Iterator[Provider]:
    with provider_for(sim, kind) as built:
        yield built


def test_make_provider_picks_the_class_of_the_kind(provider: Provider, kind: ProviderKind) -> None:
    expected = {"cloud": GraphClient, "360dialog": D360Client, "onprem": OnPremClient}[kind]
    assert isinstance(provider, expected)
    assert provider.connection.kind == kind


def test_fetch_streams_the_media_bytes(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    data = os.urandom(600_000)  # several chunks
    media_id = add_media(client, kind, data, "video/mp4")

    with provider.fetch(media_id, PHONE) as fetched:
        body = b"".join(fetched.chunks)

    assert body == data
    assert fetched.size == len(data)
    # On-Premises announces no digest: the archive verifies the webhook's.
    announced = None if kind == "onprem" else hashlib.sha256(data).hexdigest()
    assert fetched.sha256 == announced
    assert fetched.lookup["id"] == media_id
    assert fetched.lookup["mime_type"] == "video/mp4"
    assert "url" not in fetched.lookup


def test_download_writes_the_bytes_and_reports_progress(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    data = os.urandom(700_000)
    media_id = add_media(client, kind, data, "application/pdf")
    out = io.BytesIO()
    moved: list[int] = []

    fetched = provider.download(media_id, PHONE, out, moved.append)

    assert out.getvalue() == data
    assert sum(moved) == len(data)
    assert len(moved) > 1
    assert fetched.size == len(data)


def test_one_session_sends_one_user_agent_over_one_connection(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, b"x" * 1000, "image/jpeg")

    provider.download(media_id, PHONE, io.BytesIO())
    provider.send_text(PHONE, "16505551234", "hi")

    log = client.requests()
    assert len(log) >= 2
    assert {entry["user_agent"] for entry in log} == {USER_AGENT}
    assert len({entry["connection"] for entry in log}) == 1


def test_a_body_cut_short_is_a_temporary_error(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, os.urandom(300_000), "video/mp4")
    client.add_fault(op="download", truncate=True)

    with pytest.raises(TemporaryError, match="broke off"):
        provider.download(media_id, PHONE, io.BytesIO())


def test_an_uploaded_file_can_be_fetched(
    provider: Provider, client: SimulatorClient, kind: ProviderKind, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    moved: list[int] = []

    media_id = provider.upload(path, "image/png", PHONE, moved.append)

    # Read in blocks as it is sent, never whole.
    assert sum(moved) == len(data)
    assert len(moved) > 1
    with provider.fetch(media_id, PHONE) as fetched:
        assert b"".join(fetched.chunks) == data
    [upload] = [entry for entry in client.requests() if entry["op"] == "upload"]
    assert (upload["status"], upload["media_id"]) == (200, media_id)


def test_a_media_over_the_callers_limit_is_refused_before_its_bytes(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, b"x" * 1000, "image/jpeg")
    limit = "over the account's limit of 999 bytes"
    with pytest.raises(TooBig, match=limit), provider.fetch(media_id, PHONE, max_bytes=999):
        pass
    # The look-up told: the bytes were never asked for (On-Premises answers bytes by id, and
    # its size comes with them).
    downloads = [entry for entry in client.requests() if entry["op"] == "download"]
    assert len(downloads) == (1 if kind == "onprem" else 0)
    with provider.fetch(media_id, PHONE, max_bytes=1000) as fetched:
        assert b"".join(fetched.chunks) == b"x" * 1000


def test_a_deleted_media_is_gone(
    provider: Provider, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, b"x", "image/jpeg")

    provider.delete(media_id, PHONE)

    with pytest.raises(PermanentError), provider.fetch(media_id, PHONE):
        pass
    with pytest.raises(PermanentError):
        provider.delete(media_id, PHONE)


CLOUD_TEXT = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "447700900123",
    "type": "text",
    "text": {"preview_url": False, "body": "too big"},
}
ONPREM_TEXT = {
    "recipient_type": "individual",
    "to": "447700900123",
    "type": "text",
    "text": {"body": "too big"},
}


def test_a_text_is_sent(provider: Provider, client: SimulatorClient, kind: ProviderKind) -> None:
    message_id = provider.send_text(PHONE, "447700900123", "too big")

    [sent] = client.sent_messages()
    assert sent["provider"] == kind
    assert sent["wamid"] == message_id
    # 360dialog takes the Cloud API's body; On-Premises has its own, and no phone_number_id.
    assert sent["payload"] == (ONPREM_TEXT if kind == "onprem" else CLOUD_TEXT)
    assert sent["phone_number_id"] == (PHONE if kind == "cloud" else None)


def test_a_rejected_credential_is_a_credentials_error(
    sim: Simulator, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, b"x", "image/jpeg")

    with provider_for(sim, kind, "revoked") as provider:
        with pytest.raises(CredentialsError), provider.fetch(media_id, PHONE):
            pass
        with pytest.raises(CredentialsError):
            provider.send_text(PHONE, "447700900123", "hello")

    assert [entry["authorized"] for entry in client.requests()] == [False, False]


def test_429_is_throttled_with_the_wait_asked_for(
    provider: Provider, client: SimulatorClient
) -> None:
    client.add_fault(op="send", status=429, retry_after=7)

    with pytest.raises(ThrottledError) as raised:
        provider.send_text(PHONE, "447700900123", "hello")

    assert raised.value.retry_after == 7
    assert client.sent_messages() == []


def test_5xx_is_temporary(provider: Provider, client: SimulatorClient, kind: ProviderKind) -> None:
    media_id = add_media(client, kind, b"x", "image/jpeg")
    client.add_fault(op="download", status=503)

    with pytest.raises(TemporaryError), provider.fetch(media_id, PHONE):
        pass

    with provider.fetch(media_id, PHONE) as fetched:
        assert b"".join(fetched.chunks) == b"x"


@pytest.mark.parametrize(
    ("name", "mime_type", "size", "reason"),
    [
        ("a.gif", "image/gif", 10, "image/gif is not supported"),
        ("a.jpg", "image/jpeg", 5 * 1024 * 1024 + 1, "5242881 bytes is over the 5242880-byte"),
        ("a.webp", "image/webp", 100 * 1024 + 1, "static sticker"),
        ("a.ogg", "audio/ogg; codecs=vorbis", 10, "Opus codec only"),
        ("a.ogg", "audio/ogg", 10, "give the type as audio/ogg; codecs=opus"),
    ],
)
def test_a_refused_upload_sends_nothing(
    provider: Provider,
    client: SimulatorClient,
    tmp_path: Path,
    name: str,
    mime_type: str,
    size: int,
    reason: str,
) -> None:
    path = tmp_path / name
    with path.open("wb") as file:
        file.truncate(size)

    with pytest.raises(MediaRejected, match=reason):
        provider.upload(path, mime_type, PHONE)

    assert client.requests() == []
