"""Never overwrite, proven against the real SeaweedFS: each conditional write with its positive
control, and the archive task meeting a key already taken."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import wait_for
from graphsim import webhooks
from tests.e2e.conftest import BUCKET, Sent, Stack
from worker.layout import build_key
from worker.storage import PART_SIZE, ArchiveStore, ObjectExists

pytestmark = pytest.mark.e2e

WRITERS = 3


def _key(name: str) -> str:
    return f"commit-test/{name}/{secrets.token_hex(6)}"


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
    store = ArchiveStore(s3, BUCKET)
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
    store = ArchiveStore(s3, BUCKET)
    key = _key("sidecar") + ".json"
    store.put_json(key, {"sha256": "first"})
    store.put_json(key, {"sha256": "second"})
    assert json.loads(_body(s3, key)) == {"sha256": "first"}

    # Positive control, as above.
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"sha256":"second"}')
    assert json.loads(_body(s3, key)) == {"sha256": "second"}


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
