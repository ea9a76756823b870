"""A webhook's download URL through the archive.

First the archiver in this process, on a real Redis, SeaweedFS and the simulator, one try at a
time; then once through the real `web` and `worker`. The jobs come from signed-webhook payloads
parsed as `web` parses them, so the URL travels the way it does in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client import REGISTRY
from redis import Redis

from devstack import webhooks
from devstack.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedFS
from devstack.stack import StackEnv
from graphsim import MediaRecord, Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, Sent, Stack
from tests.unit.fakes import FakeEventSink
from wa_media.core.errors import IntegrityError, TemporaryError
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import build_key
from wa_media.providers.accounts import worker_settings
from wa_media.stores.commit import CommitClaims
from wa_media.stores.records import MediaRef, MediaStateStore
from wa_media.stores.s3 import make_s3_client
from webhook.payload import parse_cloud_payload
from worker.archive import Archiver, Done, Failed, RetryLater
from worker.clients import ClientDirectory

PHONE = webhooks.DEFAULT_PHONE_NUMBER_ID
MIME = "image/jpeg"

MakeArchiver = Callable[..., Archiver]


@pytest.fixture(scope="module")
def url_redis() -> Iterator[str]:
    yield from redis_db(4)


@pytest.fixture
def make_archiver(
    simulator: Simulator,
    seaweed: SeaweedFS,
    url_redis: str,
    sim: SimulatorClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MakeArchiver]:
    """Archivers as a worker process builds them, from the variables of a deployment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    opened: list[Redis] = []

    def make(*, use_webhook_url: str = "true", max_media_bytes: int = MAX_MEDIA_BYTES) -> Archiver:
        env = StackEnv.local(
            simulator,
            seaweed,
            url_redis,
            BUCKET,
            max_media_bytes=max_media_bytes,
            extra=(("USE_WEBHOOK_URL", use_webhook_url),),
        )
        settings = worker_settings(env.environ())
        redis = Redis.from_url(url_redis)
        opened.append(redis)
        clients = ClientDirectory(settings, redis, make_s3_client(seaweed.endpoint_url))
        return Archiver(
            settings, clients, MediaStateStore(redis), CommitClaims(redis), FakeEventSink()
        )

    yield make
    for redis in opened:
        redis.close()


def new_media(sim: SimulatorClient, size: int = 30_000) -> MediaRecord:
    return sim.add_generated_media(size, secrets.randbits(32), MIME, phone_number_id=PHONE)


def webhook_job(record: MediaRecord, url: str | None, sha256_b64: str | None = None) -> MediaJob:
    """The job `web` makes of a v24+ webhook announcing this media with `url`."""
    message = webhooks.media_message(
        "image",
        record.id,
        sha256_b64=record.sha256_b64 if sha256_b64 is None else sha256_b64,
        mime_type=record.mime_type,
        url=url,
    )
    payload = webhooks.envelope([message], phone_number_id=PHONE)
    (job,) = parse_cloud_payload(payload, received_at=int(time.time())).media
    return job


def try_once(archiver: Archiver, job: MediaJob) -> Any:
    archiver.state.admit(job)
    return archiver.archive(job)


def ops(sim: SimulatorClient, media_id: str) -> list[str]:
    return [entry["op"] for entry in sim.requests() if entry["media_id"] == media_id]


def key_of(job: MediaJob) -> str:
    return build_key("", PHONE, job.timestamp, job.media_id, job.mime_type)


def sidecar(s3: Any, job: MediaJob) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=key_of(job) + ".json")["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def stored(s3: Any, job: MediaJob) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=BUCKET, Key=key_of(job))["Body"].read()
    except ClientError:
        return None
    return body


def calls_observed(kind: str) -> tuple[float, float]:
    """(media observed, calls summed) of `wa_media_provider_calls{kind}` in this process."""
    labels = {"kind": kind}
    count = REGISTRY.get_sample_value("wa_media_provider_calls_count", labels) or 0.0
    total = REGISTRY.get_sample_value("wa_media_provider_calls_sum", labels) or 0.0
    return count, total


def test_a_first_try_downloads_the_webhook_url_and_skips_the_lookup(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    record = new_media(sim)
    job = webhook_job(record, sim.download_url(record.id))
    lookups_before, downloads_before = calls_observed("lookup"), calls_observed("download")

    result = try_once(make_archiver(), job)

    assert result == Done("archived", key_of(job))
    assert ops(sim, record.id) == ["download"]
    document = sidecar(s3, job)
    assert document["url_source"] == "webhook"
    assert (document["sha256"], document["size"]) == (record.sha256, record.file_size)
    assert document["lookup"] == {}
    data = stored(s3, job)
    assert data is not None
    assert hashlib.sha256(data).hexdigest() == record.sha256
    # One media observed: no look-up, one download.
    lookups, downloads = calls_observed("lookup"), calls_observed("download")
    assert (lookups[0] - lookups_before[0], lookups[1] - lookups_before[1]) == (1, 0)
    assert (downloads[0] - downloads_before[0], downloads[1] - downloads_before[1]) == (1, 1)


@pytest.mark.parametrize("status", [401, 404, 410])
def test_a_refused_webhook_url_falls_back_to_the_lookup_within_the_try(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any, url_redis: str, status: int
) -> None:
    record = new_media(sim)
    job = webhook_job(record, sim.download_url(record.id))
    sim.add_fault(op="download", media_id=record.id, status=status)
    archiver = make_archiver()

    result = try_once(archiver, job)

    assert result == Done("archived", key_of(job))
    assert ops(sim, record.id) == ["download", "lookup", "download"]
    assert sidecar(s3, job)["url_source"] == "lookup"
    assert archiver.state.get(MediaRef.of(job)).attempts == 1
    # A dead URL says nothing of the token: calls with it are not paused.
    with Redis.from_url(url_redis) as redis:
        assert redis.zcard("wa:paused") == 0


def test_later_tries_look_the_media_up(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    record = new_media(sim)
    job = webhook_job(record, sim.download_url(record.id))
    sim.add_fault(op="download", media_id=record.id, status=503)
    archiver = make_archiver()

    first = try_once(archiver, job)
    assert isinstance(first, RetryLater)
    assert isinstance(first.error, TemporaryError)
    assert ops(sim, record.id) == ["download"]

    # The webhook's URL is still valid, but a second try does not use it.
    second = archiver.archive(job)

    assert second == Done("archived", key_of(job))
    assert ops(sim, record.id) == ["download", "lookup", "download"]
    assert sidecar(s3, job)["url_source"] == "lookup"
    assert archiver.state.get(MediaRef.of(job)).attempts == 2


def test_bytes_that_differ_from_the_webhook_digest_are_not_committed(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    record = new_media(sim)
    other = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    job = webhook_job(record, sim.download_url(record.id), sha256_b64=other)
    archiver = make_archiver()

    result = try_once(archiver, job)

    assert isinstance(result, RetryLater)
    assert isinstance(result.error, IntegrityError)
    assert "webhook" in result.error.reason
    assert ops(sim, record.id) == ["download"]
    assert stored(s3, job) is None
    assert archiver.state.get(MediaRef.of(job)).integrity_failures == 1


def test_without_a_usable_webhook_digest_the_media_is_looked_up(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    record = new_media(sim)
    job = webhook_job(record, sim.download_url(record.id), sha256_b64="not a digest")
    assert (job.sha256, job.anomalies) == (None, ("sha256_malformed",))

    result = try_once(make_archiver(), job)

    assert result == Done("archived", key_of(job))
    assert ops(sim, record.id) == ["lookup", "download"]
    assert sidecar(s3, job)["url_source"] == "lookup"


def test_use_webhook_url_false_looks_every_media_up(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    record = new_media(sim)
    job = webhook_job(record, sim.download_url(record.id))

    result = try_once(make_archiver(use_webhook_url="false"), job)

    assert result == Done("archived", key_of(job))
    assert ops(sim, record.id) == ["lookup", "download"]
    assert sidecar(s3, job)["url_source"] == "lookup"


def test_max_media_bytes_stops_a_webhook_url_download_as_it_streams(
    make_archiver: MakeArchiver, sim: SimulatorClient, s3: Any
) -> None:
    # No look-up announces a size to refuse beforehand: the count of bytes received stops it.
    record = new_media(sim, size=600_000)
    job = webhook_job(record, sim.download_url(record.id))

    result = try_once(make_archiver(max_media_bytes=300_000), job)

    assert isinstance(result, Failed)
    assert result.label == "too_big"
    assert ops(sim, record.id) == ["download"]
    assert stored(s3, job) is None


def test_a_v24_webhook_is_archived_with_no_lookup(stack: Stack) -> None:
    record = new_media(stack.sim)
    message = webhooks.media_message(
        "image",
        record.id,
        sha256_b64=record.sha256_b64,
        mime_type=MIME,
        url=stack.sim.download_url(record.id),
    )
    sent = Sent(record, message, build_key("", PHONE, int(message["timestamp"]), record.id, MIME))

    assert stack.post(sent).status_code == 200
    document = stack.wait_archived(sent)

    assert document["url_source"] == "webhook"
    assert stack.verified(sent)
    assert ops(stack.sim, record.id) == ["download"]
    assert record.id not in stack.sim.stats()["lookups"]
