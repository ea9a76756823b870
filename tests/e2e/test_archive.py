"""Every media type, from a signed webhook to a verified object and sidecar in S3."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack import webhooks
from tests.e2e.conftest import BUCKET, Stack
from wa_media.stores.records import RECORD_TTL

pytestmark = pytest.mark.e2e

KINDS = ["image", "video", "audio", "voice", "document", "sticker"]


def test_every_media_type_is_archived_verified(stack: Stack) -> None:
    sent = [
        stack.media("image", size=150_000, caption="front door"),
        stack.media("video", size=9_000_000 // 2),
        stack.media("audio", size=30_000),
        stack.media("voice", size=12_000),
        stack.media("document", size=8_500_000 // 2 + 5, filename="Rapport d'été.pdf"),
        stack.media("sticker", size=2_000),
    ]
    assert stack.post(*sent[:3]).status_code == 200
    assert stack.post(*sent[3:]).status_code == 200

    for item in sent:
        document = stack.wait_archived(item)
        data = stack.object_bytes(item.key)
        digest = hashlib.sha256(data).hexdigest()
        assert digest == item.record.sha256
        assert len(data) == item.record.file_size
        head = stack.s3.head_object(Bucket=BUCKET, Key=item.key)
        kind = item.message["type"]
        media = item.message[kind]
        assert head["ContentType"] == media["mime_type"]
        assert head["Metadata"] == {
            "sha256": digest,
            "wamid": item.message["id"],
            "from": item.message["from"],
            "media-type": kind,
            "direction": "inbound",
        }
        assert document["sha256"] == digest
        assert document["size"] == len(data)
        assert document["key"] == item.key
        assert document["bucket"] == BUCKET
        assert document["media_id"] == item.record.id
        assert document["wamid"] == item.message["id"]
        assert document["from"] == item.message["from"]
        assert document["timestamp"] == int(item.message["timestamp"])
        assert document["type"] == kind
        assert document["mime_type"] == media["mime_type"]
        assert document["waba_id"] == "102290129340398"
        assert document["phone_number_id"] == "106540352242922"
        assert document["lookup"]["sha256"] == digest
        assert "url" not in document["lookup"]
        assert document["archived_at"].endswith("Z")
        assert document["schema"] == 2
        assert (document["direction"], document["source"]) == ("inbound", "messages")
        assert document["customer"]["phone"] == item.message["from"]
        assert document["url_source"] == "lookup"
        assert document["anomalies"] == []
        state = stack.state(item.record.id)
        assert state["state"] == "archived"
        assert state["key"] == item.key
        key = f"wa:media:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{item.record.id}"
        assert 0 < stack.redis.ttl(key) <= RECORD_TTL

    sidecars = {kind: stack.sidecar(item.key) or {} for kind, item in zip(KINDS, sent, strict=True)}
    assert sidecars["voice"]["voice"] is True
    assert sidecars["voice"]["key"].endswith(".ogg")
    assert sidecars["audio"]["voice"] is False
    assert sidecars["document"]["filename"] == "Rapport d'été.pdf"
    assert sidecars["sticker"]["animated"] is False
    assert sidecars["image"]["caption"] == "front door"
    assert sidecars["image"]["voice"] is None
    document_head = stack.s3.head_object(Bucket=BUCKET, Key=sent[4].key)
    assert document_head["ContentDisposition"] == (
        'attachment; filename="Rapport d_ete.pdf"; '
        "filename*=UTF-8''Rapport%20d%27%C3%A9t%C3%A9.pdf"
    )
    image_head = stack.s3.head_object(Bucket=BUCKET, Key=sent[0].key)
    assert "ContentDisposition" not in image_head
    # Nothing half-written was left behind.
    assert stack.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_duplicate_delivery_archives_once_and_downloads_once(stack: Stack) -> None:
    item = stack.media("image")
    before = stack.task_counts()
    # While another worker holds the media, both deliveries find it unarchived: each queues a
    # try, and each try meets the lease and is retried.
    with stack.lease_held(item.record.id):
        assert stack.post(item.message).status_code == 200
        assert stack.post(item.message).status_code == 200
        stack.wait_tasks(before, {("fanout", "done"): 2, ("media", "retried"): 2})
    stack.wait_archived(item, timeout=90)
    # Delivered again after archiving: acknowledged, and no try queued.
    assert stack.post(item.message).status_code == 200
    # Every try has ended: one archived, the other found it archived (after another wait for
    # the lease if it came while the first was archiving).
    stack.wait_tasks(
        before,
        {("fanout", "done"): 3, ("media", "archived"): 1, ("media", "duplicate"): 1},
        timeout=90,
    )
    listing = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=item.key)
    assert sorted(obj["Key"] for obj in listing["Contents"]) == [item.key, item.key + ".json"]
    assert stack.sim.stats()["downloads"].get(item.record.id) == 1


def test_concurrent_duplicates_make_one_object(stack: Stack) -> None:
    item = stack.media("video", size=3_000_000)
    # Slow downloads: the try that wins the lease keeps it while the others come and look.
    stack.sim.add_fault(op="download", media_id=item.record.id, latency=1.0, times=-1)
    before = stack.task_counts()
    with stack.lease_held(item.record.id):
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: stack.post(item.message).status_code, range(4)))
        assert answers == [200] * 4
        # Each delivery queued a try; each met the lease, and all four come back together.
        stack.wait_tasks(before, {("fanout", "done"): 4, ("media", "retried"): 4})
    stack.wait_archived(item, timeout=90)
    assert stack.verified(item)
    stack.wait_tasks(before, {("media", "archived"): 1, ("media", "duplicate"): 3}, timeout=120)
    listing = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=item.key)
    assert len(listing["Contents"]) == 2
    assert stack.sim.stats()["downloads"].get(item.record.id) == 1
