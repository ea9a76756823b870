"""A webhook's download URL against the simulator: used without a look-up, or given up for one.

Each test runs a provider client's `fetch` with the `url` a v24+ webhook carries, minted by
the simulator, and reads the simulator's request log to see which calls went out.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import PHONE, add_media, provider_fixture
from wa_media.core.errors import TemporaryError
from wa_media.core.provider import Fetched, Provider
from wa_media.providers.graphflow import url_expired

cloud = provider_fixture("cloud")
d360 = provider_fixture("360dialog")
onprem = provider_fixture("onprem")


def logged(client: SimulatorClient) -> list[tuple[str, str, int | None]]:
    return [(entry["op"], entry["provider"], entry["status"]) for entry in client.requests()]


def fetch_all(
    provider: Provider, media_id: str, url: str | None, phone_number_id: str | None = PHONE
) -> tuple[bytes, Fetched]:
    with provider.fetch(media_id, phone_number_id, url) as fetched:
        return b"".join(fetched.chunks), fetched


@pytest.fixture
def media(client: SimulatorClient) -> tuple[str, bytes]:
    data = os.urandom(3000)
    return add_media(client, "cloud", data, "image/jpeg"), data


def fallbacks(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "webhook_url_fallback"]


def calls(kind: str) -> float:
    return REGISTRY.get_sample_value("wa_provider_calls_total", {"kind": kind}) or 0.0


def test_the_webhook_url_is_downloaded_without_a_lookup(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes]
) -> None:
    media_id, data = media
    url = client.download_url(media_id)

    got, fetched = fetch_all(cloud, media_id, url)

    assert got == data
    assert logged(client) == [("download", "cloud", 200)]
    assert client.requests()[0]["authorized"] is True
    assert fetched.url_source == "webhook"
    assert (fetched.lookups, fetched.downloads) == (0, 1)
    # Nothing announced but the webhook's digest: the archive checks the bytes against it.
    assert (fetched.sha256, fetched.size, fetched.lookup) == (None, None, {})


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_refused_webhook_url_falls_back_to_a_lookup_in_the_same_fetch(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes], status: int
) -> None:
    media_id, data = media
    url = client.download_url(media_id)
    client.add_fault(op="download", media_id=media_id, status=status)

    with capture_logs() as logs:
        got, fetched = fetch_all(cloud, media_id, url)

    assert got == data
    assert logged(client) == [
        ("download", "cloud", status),
        ("lookup", "cloud", 200),
        ("download", "cloud", 200),
    ]
    assert fetched.url_source == "lookup"
    assert (fetched.lookups, fetched.downloads) == (1, 2)
    (event,) = fallbacks(logs)
    assert event["reason"] == "refused"
    assert event["status"] == status
    assert event["log_level"] == "info"
    # The URL's path and query (its signature) are as good as a credential: not logged.
    assert "ext=" not in repr(logs)
    assert media_id not in repr(logs)


def test_a_webhook_url_past_its_ext_is_not_tried(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes]
) -> None:
    media_id, data = media
    url = client.download_url(media_id, expired=True)

    with capture_logs() as logs:
        got, fetched = fetch_all(cloud, media_id, url)

    assert got == data
    assert logged(client) == [("lookup", "cloud", 200), ("download", "cloud", 200)]
    assert (fetched.url_source, fetched.lookups, fetched.downloads) == ("lookup", 1, 1)
    assert [(e["reason"], e["status"]) for e in fallbacks(logs)] == [("expired", None)]


@pytest.mark.parametrize("via", ["url", "redirect"])
def test_a_webhook_url_off_the_allowed_hosts_never_gets_the_token(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes], via: str
) -> None:
    media_id, data = media
    if via == "url":
        url = client.download_url(media_id, foreign=True)
    else:
        # The allowed host answers the webhook's URL with a redirect to the foreign host.
        url = client.download_url(media_id)
        client.add_fault(op="download", media_id=media_id, redirect=True)

    with capture_logs() as logs:
        got, fetched = fetch_all(cloud, media_id, url)

    assert got == data
    assert client.foreign_requests() == []
    assert fetched.url_source == "lookup"
    assert [e["op"] for e in client.requests()] == (
        ["lookup", "download"] if via == "url" else ["download", "lookup", "download"]
    )
    (event,) = fallbacks(logs)
    assert (event["reason"], event["log_level"]) == ("host_not_allowed", "warning")
    assert event["host"] == "127.0.0.1"


def test_other_failures_of_the_webhook_url_are_not_hidden_by_a_lookup(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes]
) -> None:
    # A provider in trouble (5xx) would be as troubled for a looked-up URL: the try fails,
    # and the task's retry (with a look-up) comes later.
    media_id, _ = media
    url = client.download_url(media_id)
    client.add_fault(op="download", media_id=media_id, status=503)

    with pytest.raises(TemporaryError, match="503"):
        fetch_all(cloud, media_id, url)

    assert logged(client) == [("download", "cloud", 503)]


def test_360dialog_downloads_the_webhook_url_through_its_own_host(
    sim: Simulator, d360: Provider, client: SimulatorClient
) -> None:
    data = os.urandom(2000)
    media_id = add_media(client, "360dialog", data, "video/mp4")
    url = client.download_url(media_id)
    assert url.startswith(f"{sim.url}/lookaside/{media_id}?")

    got, fetched = fetch_all(d360, media_id, url, None)

    # The lookaside host was swapped for 360dialog's base URL, as for a looked-up URL.
    assert got == data
    assert logged(client) == [("download", "360dialog", 200)]
    assert fetched.url_source == "webhook"


def test_360dialog_falls_back_to_its_lookup(d360: Provider, client: SimulatorClient) -> None:
    data = os.urandom(2000)
    media_id = add_media(client, "360dialog", data, "video/mp4")
    url = client.download_url(media_id)
    client.add_fault(op="download", media_id=media_id, status=404)

    got, fetched = fetch_all(d360, media_id, url, None)

    assert got == data
    assert logged(client) == [
        ("download", "360dialog", 404),
        ("lookup", "360dialog", 200),
        ("download", "360dialog", 200),
    ]
    assert fetched.url_source == "lookup"


def test_on_premises_serves_bytes_by_id_whatever_url_is_given(
    onprem: Provider, client: SimulatorClient
) -> None:
    data = os.urandom(2000)
    media_id = add_media(client, "onprem", data, "image/jpeg")

    got, fetched = fetch_all(onprem, media_id, "https://lookaside.fbsbx.com/x?ext=1", None)

    assert got == data
    assert logged(client) == [("download", "onprem", 200)]
    assert (fetched.url_source, fetched.downloads) == (None, 1)


def test_provider_calls_are_counted_by_kind(
    cloud: Provider, client: SimulatorClient, media: tuple[str, bytes]
) -> None:
    media_id, _ = media
    url = client.download_url(media_id)
    before = {kind: calls(kind) for kind in ("lookup", "download", "send")}

    fetch_all(cloud, media_id, url)
    client.add_fault(op="download", media_id=media_id, status=404)
    fetch_all(cloud, media_id, url)
    cloud.send_text(PHONE, "447700900123", "hello")

    after = {kind: calls(kind) - before[kind] for kind in before}
    assert after == {"lookup": 1, "download": 3, "send": 1}


@pytest.mark.parametrize(
    ("url", "expired"),
    [
        ("https://lookaside.fbsbx.com/m?ext=1000&hash=x", True),
        ("https://lookaside.fbsbx.com/m?hash=x&ext=999", True),
        ("https://lookaside.fbsbx.com/m?ext=1001&hash=x", False),
        ("https://lookaside.fbsbx.com/m?ext=soon&hash=x", False),
        ("https://lookaside.fbsbx.com/m?hash=x", False),
        ("https://lookaside.fbsbx.com/m", False),
        ("http://[::1/m?ext=1", False),
    ],
)
def test_url_expired_reads_ext_as_unix_seconds(url: str, expired: bool) -> None:
    assert url_expired(url, now=1000.0) is expired
