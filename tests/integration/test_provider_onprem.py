"""The On-Premises client against the simulated `/onprem/v1` API."""

from __future__ import annotations

import io
import os

import pytest

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import PHONE, add_media, provider_fixture, provider_for
from wa_media.core.errors import (
    PermanentError,
    ReengagementError,
    TemporaryError,
    ThrottledError,
)
from wa_media.core.provider import MediaUrls, Provider, ResumableUploads

onprem = provider_fixture("onprem")


def test_the_fetch_describes_the_media_by_its_answer(
    onprem: Provider, client: SimulatorClient
) -> None:
    media_id = add_media(client, "onprem", b"voice", "audio/ogg; codecs=opus")

    with onprem.fetch(media_id, None) as fetched:
        assert b"".join(fetched.chunks) == b"voice"

    assert fetched.lookup == {"id": media_id, "mime_type": "audio/ogg; codecs=opus"}
    assert (fetched.sha256, fetched.size) == (None, 5)
    assert [e["op"] for e in client.requests()] == ["download"]


def test_a_redirect_does_not_take_the_token_along(
    onprem: Provider, client: SimulatorClient
) -> None:
    media_id = add_media(client, "onprem", b"x", "image/jpeg")
    client.add_fault(op="download", redirect=True)

    with pytest.raises(PermanentError, match="not allowed to receive the credential"):
        onprem.download(media_id, None, io.BytesIO())

    assert client.foreign_requests() == []


def test_a_file_over_the_limit_is_refused_before_reading(
    sim: Simulator, client: SimulatorClient
) -> None:
    media_id = add_media(client, "onprem", os.urandom(5000), "image/jpeg")
    out = io.BytesIO()

    with (
        provider_for(sim, "onprem", limit=1000) as onprem,
        pytest.raises(PermanentError, match="5000 bytes, over MAX_MEDIA_BYTES=1000"),
    ):
        onprem.download(media_id, None, out)

    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, 470, ReengagementError),
        (400, 1015, ThrottledError),
        (400, 1011, TemporaryError),
        (500, 1014, TemporaryError),
        (400, 1009, PermanentError),
    ],
)
def test_onprem_error_codes_are_classified(
    onprem: Provider, client: SimulatorClient, status: int, code: int, kind: type[Exception]
) -> None:
    client.add_fault(op="send", status=status, error={"code": code})

    with pytest.raises(kind, match=f"HTTP {status}, code {code}") as raised:
        onprem.send_text(PHONE, "447700900123", "hello")

    assert type(raised.value) is kind


def test_media_urls_and_resumable_uploads_are_not_capabilities(
    onprem: Provider, client: SimulatorClient
) -> None:
    assert not isinstance(onprem, MediaUrls)
    assert not isinstance(onprem, ResumableUploads)
    assert not hasattr(onprem, "media_url")
    assert not hasattr(onprem, "upload_resumable")

    assert client.requests() == []
