"""The Cloud API client against the simulated Graph API: what only the Cloud API does."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import PHONE, connection, pdf_file, provider_fixture, provider_for
from wa_media.core.errors import (
    IntegrityError,
    PermanentError,
    ReengagementError,
    ThrottledError,
    UrlRefused,
)
from wa_media.core.provider import Provider
from wa_media.providers.cloud import GraphClient
from wa_media.providers.graphflow import URL_ATTEMPTS

cloud = provider_fixture("cloud")


def ops(client: SimulatorClient) -> list[str]:
    return [entry["op"] for entry in client.requests()]


def test_media_url_is_the_lookup_with_its_url(
    sim: Simulator, cloud: Provider, client: SimulatorClient
) -> None:
    record = client.add_media(b"image bytes", "image/jpeg", phone_number_id=PHONE)

    lookup = cloud.media_url(record.id, PHONE)

    assert lookup["url"].startswith(f"{sim.url}/lookaside/{record.id}?ext=")
    assert (lookup["id"], lookup["sha256"], lookup["file_size"]) == (
        record.id,
        record.sha256,
        record.file_size,
    )
    assert ops(client) == ["lookup"]


def test_the_lookup_is_scoped_to_the_phone_number(cloud: Provider, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg", phone_number_id="another-number")

    with pytest.raises(PermanentError, match="code 100"):
        cloud.media_url(record.id, PHONE)


def test_an_expired_url_is_looked_up_again(cloud: Provider, client: SimulatorClient) -> None:
    data = os.urandom(1000)
    record = client.add_media(data, "image/jpeg", phone_number_id=PHONE)
    client.add_fault(op="lookup", expired=True, times=URL_ATTEMPTS - 1)

    out = io.BytesIO()
    cloud.download(record.id, PHONE, out)

    assert out.getvalue() == data
    assert client.stats()["lookups"] == {record.id: URL_ATTEMPTS}


def test_urls_refused_every_time_give_the_task_back(
    cloud: Provider, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg", phone_number_id=PHONE)
    client.add_fault(op="lookup", expired=True, times=-1)

    with pytest.raises(UrlRefused):
        cloud.download(record.id, PHONE, io.BytesIO())

    assert client.stats()["lookups"] == {record.id: URL_ATTEMPTS}


def test_provider_calls_are_counted_by_kind(
    cloud: Provider, client: SimulatorClient, tmp_path: Path
) -> None:
    def counted() -> dict[str, float]:
        kinds = ("lookup", "download", "send", "delete", "upload")
        return {
            kind: REGISTRY.get_sample_value("wa_provider_calls_total", {"kind": kind}) or 0.0
            for kind in kinds
        }

    record = client.add_media(b"x", "image/jpeg", phone_number_id=PHONE)
    client.add_fault(op="lookup", expired=True)
    before = counted()

    fetched = cloud.download(record.id, PHONE, io.BytesIO())
    cloud.send_text(PHONE, "447700900123", "hello")
    cloud.delete(record.id, PHONE)
    cloud.upload(pdf_file(tmp_path), "application/pdf", PHONE)

    after = counted()
    assert {kind: after[kind] - before[kind] for kind in after} == {
        "lookup": 2,
        "download": 2,
        "send": 1,
        "delete": 1,
        "upload": 1,
    }
    # The first URL had expired: a second look-up, a second download.
    assert (fetched.lookups, fetched.downloads) == (2, 2)


@pytest.mark.parametrize(
    "fault",
    [{"op": "lookup", "sha256": "ab" * 32}, {"op": "download", "corrupt": True}],
    ids=["announced-digest", "corrupted-bytes"],
)
def test_bytes_that_disagree_with_the_lookup_are_refused(
    cloud: Provider, client: SimulatorClient, fault: dict[str, object]
) -> None:
    record = client.add_media(os.urandom(5000), "image/jpeg", phone_number_id=PHONE)
    client.add_fault(**fault)

    with pytest.raises(IntegrityError, match="sha256"):
        cloud.download(record.id, PHONE, io.BytesIO())


def test_more_bytes_than_announced_stop_the_download(
    cloud: Provider, client: SimulatorClient
) -> None:
    record = client.add_media(os.urandom(600_000), "image/jpeg", phone_number_id=PHONE)
    client.add_fault(op="lookup", file_size=1000)
    out = io.BytesIO()

    with pytest.raises(IntegrityError, match="1000 bytes announced"):
        cloud.download(record.id, PHONE, out)

    assert len(out.getvalue()) < record.file_size


def test_a_file_over_the_limit_is_refused_before_downloading(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x" * 2000, "image/jpeg", phone_number_id=PHONE)

    with (
        provider_for(sim, "cloud", limit=1000) as cloud,
        pytest.raises(PermanentError, match="over MAX_MEDIA_BYTES=1000"),
    ):
        cloud.download(record.id, PHONE, io.BytesIO())

    assert ops(client) == ["lookup"]


@pytest.mark.parametrize(
    "fault",
    [{"op": "lookup", "foreign": True}, {"op": "download", "redirect": True}],
    ids=["foreign-url", "redirect"],
)
def test_the_token_never_leaves_the_allowed_hosts(
    cloud: Provider, client: SimulatorClient, fault: dict[str, object]
) -> None:
    record = client.add_media(b"x", "image/jpeg", phone_number_id=PHONE)
    client.add_fault(**fault)

    with pytest.raises(PermanentError, match="not allowed to receive the credential"):
        cloud.download(record.id, PHONE, io.BytesIO())

    assert client.foreign_requests() == []


def test_redirects_within_the_allowed_hosts_are_followed(
    sim: Simulator, client: SimulatorClient
) -> None:
    # With the foreign host allowed too, the redirect is followed (and the token goes along).
    record = client.add_media(b"redirected", "image/jpeg", phone_number_id=PHONE)
    client.add_fault(op="download", redirect=True)
    base = connection(sim, "cloud")
    foreign_host = sim.foreign_url.removeprefix("http://")
    allowed = dataclasses.replace(base, media_hosts=(sim.media_host, foreign_host))

    with requests.Session() as session:
        cloud = GraphClient.create(allowed, max_media_bytes=1000, session=session)
        out = io.BytesIO()
        cloud.download(record.id, PHONE, out)

    assert out.getvalue() == b"redirected"
    assert [r["has_authorization"] for r in client.foreign_requests()] == [True]


@pytest.mark.parametrize(
    ("error", "kind"),
    [({"code": 4}, ThrottledError), ({"code": 131047}, ReengagementError)],
)
def test_the_graph_code_decides_over_the_status(
    cloud: Provider, client: SimulatorClient, error: dict[str, int], kind: type[Exception]
) -> None:
    client.add_fault(op="send", status=400, error=error)

    with pytest.raises(kind, match=f"code {error['code']}"):
        cloud.send_text(PHONE, "447700900123", "hello")


def test_an_uploaded_media_belongs_to_its_number(
    cloud: Provider, client: SimulatorClient, tmp_path: Path
) -> None:
    path = pdf_file(tmp_path)

    media_id = cloud.upload(path, "application/pdf", PHONE)

    lookup = cloud.media_url(media_id, PHONE)
    assert lookup["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lookup["mime_type"] == "application/pdf"
    with pytest.raises(PermanentError):
        cloud.media_url(media_id, "another-number")


def test_an_upload_needs_a_phone_number_id(
    cloud: Provider, client: SimulatorClient, tmp_path: Path
) -> None:
    path = pdf_file(tmp_path)

    with pytest.raises(PermanentError, match="phone_number_id"):
        cloud.upload(path, "application/pdf", None)

    assert client.requests() == []


def test_resumable_uploads_need_the_app_id(
    sim: Simulator, client: SimulatorClient, tmp_path: Path
) -> None:
    path = pdf_file(tmp_path)
    without_app = dataclasses.replace(connection(sim, "cloud"), app_id=None)

    with requests.Session() as session:
        cloud = GraphClient.create(without_app, max_media_bytes=1000, session=session)
        with pytest.raises(PermanentError, match="app id"):
            cloud.upload_resumable(path, "application/pdf")

    assert client.requests() == []
