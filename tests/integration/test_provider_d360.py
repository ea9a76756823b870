"""The 360dialog client against the simulated `/d360` API: its key, its look-up block."""

from __future__ import annotations

import io
import os

import pytest

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import add_media, provider_fixture
from wa_media.core.errors import CredentialsError, PermanentError, ThrottledError, UrlRefused
from wa_media.core.provider import Provider

d360 = provider_fixture("360dialog")


def logged(client: SimulatorClient) -> list[tuple[str, str, int | None]]:
    return [(e["op"], e["provider"], e["status"]) for e in client.requests()]


def test_the_download_goes_through_the_360dialog_base_url(
    sim: Simulator, d360: Provider, client: SimulatorClient
) -> None:
    data = os.urandom(300_000)
    media_id = add_media(client, "360dialog", data, "video/mp4")

    lookup = d360.media_url(media_id, None)
    out = io.BytesIO()
    d360.download(media_id, None, out)

    # The look-up gives Meta's lookaside URL; the bytes come from the 360dialog host.
    assert lookup["url"].startswith(f"{sim.url}/lookaside/{media_id}?")
    assert out.getvalue() == data
    assert logged(client) == [
        ("lookup", "360dialog", 200),
        ("lookup", "360dialog", 200),
        ("download", "360dialog", 200),
    ]


@pytest.mark.parametrize(
    "fault",
    [None, {"op": "lookup", "status": 400}, {"op": "lookup", "status": 403}],
    ids=["unknown-media", "400", "403"],
)
def test_a_refused_lookup_is_made_once_only(
    d360: Provider, client: SimulatorClient, fault: dict[str, object] | None
) -> None:
    media_id = "unknown" if fault is None else add_media(client, "360dialog", b"x", "image/jpeg")
    if fault is not None:
        client.add_fault(**fault, times=-1)

    with pytest.raises((PermanentError, CredentialsError)):
        d360.download(media_id, None, io.BytesIO())

    assert client.stats()["lookups"] == {media_id: 1}
    assert [e["op"] for e in client.requests()] == ["lookup"]


def test_an_expired_url_is_looked_up_again_once_only(
    d360: Provider, client: SimulatorClient
) -> None:
    media_id = add_media(client, "360dialog", b"x", "image/jpeg")
    client.add_fault(op="lookup", expired=True, times=-1)

    with pytest.raises(UrlRefused):
        d360.download(media_id, None, io.BytesIO())

    assert client.stats()["lookups"] == {media_id: 2}


def test_one_expired_url_is_refreshed(d360: Provider, client: SimulatorClient) -> None:
    media_id = add_media(client, "360dialog", b"fresh", "image/jpeg")
    client.add_fault(op="lookup", expired=True)
    out = io.BytesIO()

    d360.download(media_id, None, out)

    assert out.getvalue() == b"fresh"
    assert client.stats()["lookups"] == {media_id: 2}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        # The key goes to the base URL's host in place of the foreign one: a dead URL there.
        ({"op": "lookup", "foreign": True, "times": -1}, UrlRefused),
        ({"op": "download", "redirect": True}, PermanentError),
    ],
    ids=["foreign-url", "redirect"],
)
def test_the_key_never_leaves_the_360dialog_host(
    d360: Provider, client: SimulatorClient, fault: dict[str, object], error: type[Exception]
) -> None:
    media_id = add_media(client, "360dialog", b"x", "image/jpeg")
    client.add_fault(**fault)

    with pytest.raises(error):
        d360.download(media_id, None, io.BytesIO())

    assert client.foreign_requests() == []
    assert {e["provider"] for e in client.requests()} == {"360dialog"}


def test_a_blocked_key_is_throttled_for_the_block(d360: Provider, client: SimulatorClient) -> None:
    media_id = add_media(client, "360dialog", b"x", "image/jpeg")
    client.set_d360_blocking(1)
    with pytest.raises(PermanentError, match="HTTP 404"):
        d360.media_url("unknown", None)

    with pytest.raises(ThrottledError) as raised:
        d360.media_url(media_id, None)

    assert raised.value.retry_after is not None
    assert 3500 < raised.value.retry_after <= 3600


def test_error_texts_are_classified_by_status(d360: Provider, client: SimulatorClient) -> None:
    client.add_fault(op="send", status=403, error={"message": "Forbidden"})

    with pytest.raises(CredentialsError, match="HTTP 403"):
        d360.send_text("any", "447700900123", "hello")
