"""Never overwrite, proven against the real SeaweedFS: each conditional write with its positive
control, the backend's known behaviour under concurrent writes, the service's commit racing
itself, and the archive task meeting a key already taken."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from devstack import webhooks
from devstack.processes import wait_for
from tests.e2e.conftest import BUCKET, Sent, Stack
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import KeyConflict, ObjectExists
from wa_media.core.layout import build_key
from wa_media.stores.commit import CommitClaims, commit_upload
from wa_media.stores.s3 import PART_SIZE, ArchiveStore, Upload

pytestmark = pytest.mark.e2e

WRITERS = 3
PREFIX = "commit-test/"


@pytest.fixture(scope="module", autouse=True)
def _leave_the_bucket_clean(s3: Any) -> Iterator[None]:
    """The raw writes here leave objects without sidecars (or sidecars without objects) that
    other modules' `wa-media verify` runs over the shared bucket would count as mismatches."""
    yield
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    for upload in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=PREFIX).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


def _key(name: str) -> str:
    return f"{PREFIX}{name}/{secrets.token_hex(6)}"


@pytest.fixture(scope="module", autouse=True)
def _remove_test_objects(s3: Any) -> Iterator[None]:
    """Leave the shared bucket as the archive would: these tests write sidecars without their
    object and objects their sidecar does not describe, which `wa-media verify` of the whole
    bucket in other tests would report."""
    yield
    listing = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="commit-test/")
    for page in listing:
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _body(s3: Any, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def _upload(store: ArchiveStore, key: str, data: bytes, **metadata: str) -> None:
    with store.upload(
        key, content_type="image/jpeg", metadata={"sha256": _sha256(data), **metadata}
    ) as upload:
        upload.write(data)
        upload.commit()


def _leftover_uploads(s3: Any, key: str) -> list[str]:
    listing = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key)
    return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]


# -- One write after another: the second is refused, the first bytes stay -------------------


@pytest.mark.parametrize("size", [1000, PART_SIZE + 1000], ids=["put", "multipart"])
def test_a_second_commit_of_a_key_is_refused_and_the_first_bytes_stay(s3: Any, size: int) -> None:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET))
    key = _key("second")
    first, second = b"\1" * size, b"\2" * size
    _upload(store, key, first, writer="first")
    with pytest.raises(ObjectExists):
        _upload(store, key, second, writer="second")
    assert _body(s3, key) == first
    assert s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]["writer"] == "first"
    assert _leftover_uploads(s3, key) == []

    # Positive control: the same write without If-None-Match replaces the object, so the
    # refusal above is the condition's doing.
    if size < PART_SIZE:
        s3.put_object(Bucket=BUCKET, Key=key, Body=second)
    else:
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        part = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=second)
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    assert _body(s3, key) == second


def test_a_second_sidecar_is_refused_and_the_first_stays(s3: Any) -> None:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET))
    key = _key("sidecar") + ".json"
    store.put_json(key, {"sha256": "first"})
    store.put_json(key, {"sha256": "second"})
    assert json.loads(_body(s3, key)) == {"sha256": "first"}

    # Positive control, as above.
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"sha256":"second"}')
    assert json.loads(_body(s3, key)) == {"sha256": "second"}


# -- Known behaviour of SeaweedFS under concurrent conditional writes ------------------------


def _together(
    writers: int, prepare: Callable[[int], Any], write: Callable[[int, Any], None]
) -> int:
    """Run `write` in `writers` threads released at once; how many were not refused (412)."""
    prepared = [prepare(i) for i in range(writers)]
    barrier = threading.Barrier(writers)
    answers: list[str] = []

    def run(i: int) -> None:
        barrier.wait(30)
        try:
            write(i, prepared[i])
        except ClientError as exc:
            answers.append(exc.response["Error"]["Code"])
        else:
            answers.append("ok")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == writers
    assert set(answers) <= {"ok", "PreconditionFailed"}, answers
    return answers.count("ok")


def test_seaweedfs_refuses_all_but_one_of_concurrent_conditional_puts(s3: Any) -> None:
    for _ in range(10):
        key = _key("puts")

        def put(i: int, _: Any, key: str = key) -> None:
            s3.put_object(Bucket=BUCKET, Key=key, Body=bytes([i]) * 1000, IfNoneMatch="*")

        assert _together(WRITERS, lambda _: None, put) == 1


def test_seaweedfs_lets_concurrent_conditional_completions_both_succeed(s3: Any) -> None:
    """A known-behaviour check of SeaweedFS 4.48, kept on purpose: two or three of three
    CompleteMultipartUpload calls with `If-None-Match: *` arriving together all succeed on about
    half of the keys (measured 21 of 40), where AWS S3 documents one success and 412 or 409 for
    the others. If this fails, SeaweedFS honours the condition now: say so in docs/architecture.md,
    "Never overwritten", and keep the claim of wa_media/stores/commit.py for the backends that do
    not."""

    def through(key: str) -> int:
        def prepare(i: int) -> tuple[str, str]:
            upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
            part = s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=bytes([i]) * 1000
            )
            return upload_id, part["ETag"]

        def complete(i: int, prepared: tuple[str, str]) -> None:
            upload_id, etag = prepared
            s3.complete_multipart_upload(
                Bucket=BUCKET,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
                IfNoneMatch="*",
            )

        try:
            return _together(WRITERS, prepare, complete)
        finally:
            for upload_id in _leftover_uploads(s3, key):
                s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)

    # A race: each key is a try, and the first key that lets more than one through settles it.
    tries: list[int] = []
    while not tries or (max(tries) == 1 and len(tries) < 40):
        tries.append(through(_key("completions")))
    assert max(tries) > 1, f"SeaweedFS refused every concurrent completion: {tries}"


# -- The service's commit racing itself --------------------------------------------------------


class _NoClaims(CommitClaims):
    """No claim at all: what the commit would do with only the backend's condition."""

    @contextmanager
    def hold(self, bucket: str, key: str) -> Iterator[None]:
        yield


def _race(s3: Any, claims: CommitClaims, key: str, payloads: list[bytes]) -> list[Any]:
    """Writers commit `payloads` to `key` at once as the archive task does, each writing the
    sidecar after a commit that did not fail; each one's outcome: True (committed), False (the
    same bytes were there) or the KeyConflict raised."""
    barrier = threading.Barrier(len(payloads))
    outcomes: list[Any] = [None] * len(payloads)

    def writer(i: int) -> None:
        data = payloads[i]
        digest = _sha256(data)
        store = ArchiveStore(s3, ArchiveTarget(BUCKET))
        try:
            with store.upload(key, content_type="image/jpeg", metadata={"sha256": digest}) as up:
                # Exactly one part, sent now: what races below is the completion alone.
                up.write(data)
                barrier.wait(30)
                committed = commit_upload(up, store, claims, digest, len(data))
            store.put_json(key + ".json", {"sha256": digest, "size": len(data)})
            outcomes[i] = committed
        except KeyConflict as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert None not in outcomes, outcomes
    return outcomes


def _consistent(s3: Any, key: str, outcomes: list[Any]) -> bool:
    """One writer committed, and the sidecar describes the object's bytes."""
    sidecar = json.loads(_body(s3, key + ".json"))
    return outcomes.count(True) == 1 and sidecar["sha256"] == _sha256(_body(s3, key))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    # The completions race whatever the parts' size (measured with 5 MiB and 1 KB parts); small
    # ones keep many rounds cheap.
    size = 256 * 1024
    monkeypatch.setattr("wa_media.stores.s3.PART_SIZE", size)
    return size


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_concurrent_commits_leave_one_object_and_a_sidecar_that_matches_it(
    s3: Any, redis_client: Any, small_parts: int, same_bytes: bool
) -> None:
    claims = CommitClaims(redis_client)
    # Without the claim and the check, about one round in four breaks (the control below).
    for _ in range(16):
        key = _key("race")
        payloads = [(b"\7" if same_bytes else bytes([i + 1])) * small_parts for i in range(WRITERS)]
        outcomes = _race(s3, claims, key, payloads)
        [winner] = [i for i, outcome in enumerate(outcomes) if outcome is True]
        others = [outcome for outcome in outcomes if outcome is not True]
        if same_bytes:
            assert others == [False] * (WRITERS - 1)
        else:
            assert all(isinstance(outcome, KeyConflict) for outcome in others), outcomes
        assert _body(s3, key) == payloads[winner]
        assert _consistent(s3, key, outcomes)
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=key)
        assert sorted(obj["Key"] for obj in listing["Contents"]) == [key, key + ".json"]
        assert _leftover_uploads(s3, key) == []
        assert not redis_client.exists(f"wa:commit:{BUCKET}/{key}")


def test_with_the_backends_condition_alone_the_race_breaks_the_guarantee(
    s3: Any, redis_client: Any, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The positive control of the test above: the same race with neither the claim nor the
    check after completion, only the backend's condition, breaks the guarantee on SeaweedFS
    4.48 within a few rounds (two writers told they committed the key, and a sidecar that
    may describe bytes the object does not hold)."""
    monkeypatch.setattr(Upload, "_check_visible", lambda self, etag: None)
    payloads = [bytes([i + 1]) * small_parts for i in range(WRITERS)]
    rounds = 0
    while True:
        rounds += 1
        key = _key("unclaimed")
        if not _consistent(s3, key, _race(s3, _NoClaims(redis_client), key, payloads)):
            break
        # Measured: broken after 2 to 6 rounds.
        assert rounds < 60, "60 rounds with the backend's condition alone all kept the guarantee"


# -- The archive task meeting a key already taken ----------------------------------------------


def _known_media(stack: Stack, data: bytes) -> Sent:
    mime = "image/jpeg"
    record = stack.sim.add_media(data, mime)
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type=mime
    )
    key = build_key(
        "", webhooks.DEFAULT_PHONE_NUMBER_ID, int(message["timestamp"]), record.id, mime
    )
    return Sent(record, message, key)


def _events(stack: Stack, media_id: str, *, until: str) -> list[dict[str, Any]]:
    """The worker's log events of the media, once one of them is `until`."""

    def logged() -> list[dict[str, Any]] | None:
        assert stack.worker is not None
        lines = stack.worker.log_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        events = [event for event in events if event.get("media_id") == media_id]
        return events if any(event["event"] == until for event in events) else None

    return wait_for(logged, timeout=30, what=f"{until} logged for {media_id}")


def _media_tasks(stack: Stack, outcome: str, reason: str = "") -> float:
    assert stack.worker is not None
    port = stack.worker.env["WORKER_METRICS_PORT"]
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wa_tasks_total" and sample.labels == {
                "task": "media",
                "outcome": outcome,
                "reason": reason,
            }:
                return sample.value
    return 0.0


@pytest.mark.parametrize("size", [20_000, 9_000_000], ids=["put", "multipart"])
def test_a_key_holding_the_same_bytes_is_a_duplicate_and_nothing_is_rewritten(
    stack: Stack, size: int
) -> None:
    data = secrets.token_bytes(size)
    item = _known_media(stack, data)
    # Committed by an earlier writer that died before its sidecar.
    stack.s3.put_object(
        Bucket=BUCKET,
        Key=item.key,
        Body=data,
        Metadata={"sha256": item.record.sha256, "writer": "earlier"},
    )
    duplicates = _media_tasks(stack, "duplicate")
    assert stack.post(item).status_code == 200
    sidecar = stack.wait_archived(item)

    assert stack.state(item.record.id)["state"] == "archived"
    head = stack.s3.head_object(Bucket=BUCKET, Key=item.key)
    assert head["Metadata"]["writer"] == "earlier"
    assert stack.object_bytes(item.key) == data
    assert (sidecar["sha256"], sidecar["size"]) == (item.record.sha256, size)
    events = {e["event"] for e in _events(stack, item.record.id, until="media_already_archived")}
    assert "archived" not in events
    wait_for(
        lambda: _media_tasks(stack, "duplicate") > duplicates, timeout=30, what="duplicate counted"
    )


@pytest.mark.parametrize("size", [20_000, 9_000_000], ids=["put", "multipart"])
def test_a_key_holding_other_bytes_fails_loudly_and_nothing_is_overwritten(
    stack: Stack, size: int
) -> None:
    item = _known_media(stack, secrets.token_bytes(size))
    theirs = secrets.token_bytes(size)
    stack.s3.put_object(
        Bucket=BUCKET, Key=item.key, Body=theirs, Metadata={"sha256": _sha256(theirs)}
    )
    conflicts = _media_tasks(stack, "failed", "key_conflict")
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")

    assert _sha256(theirs) in record["last_error"]
    assert stack.object_bytes(item.key) == theirs
    assert not stack.object_exists(item.key + ".json")
    events = _events(stack, item.record.id, until="failed")
    [conflict] = [event for event in events if event["event"] == "key_conflict"]
    assert conflict["level"] == "error"
    assert (conflict["bucket"], conflict["key"]) == (BUCKET, item.key)
    assert conflict["sha256"] == item.record.sha256
    assert conflict["existing_sha256"] == _sha256(theirs)
    [failed] = [event for event in events if event["event"] == "failed"]
    assert (failed["level"], failed["reason_label"]) == ("error", "key_conflict")
    wait_for(
        lambda: _media_tasks(stack, "failed", "key_conflict") == conflicts + 1,
        timeout=30,
        what="key_conflict counted",
    )
