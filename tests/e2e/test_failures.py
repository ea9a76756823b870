"""One test per failure path between Meta and the bucket."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pytest
import requests

from devstack import webhooks
from devstack.processes import wait_for
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, REPLY_TEXT, Stack

# The number the stack's webhooks are for: warnings are recorded per account.
PHONE = webhooks.DEFAULT_PHONE_NUMBER_ID

pytestmark = pytest.mark.e2e


def lookups(stack: Stack, media_id: str) -> int:
    return stack.sim.stats()["lookups"].get(media_id, 0)


def downloads(stack: Stack, media_id: str) -> int:
    return stack.sim.stats()["downloads"].get(media_id, 0)


def test_expired_url_gets_a_fresh_one(stack: Stack) -> None:
    item = stack.media("image")
    stack.sim.add_fault(op="lookup", media_id=item.record.id, expired=True)
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    assert stack.verified(item)
    assert lookups(stack, item.record.id) == 2


@pytest.mark.parametrize("status", [404, 401, 403])
def test_refused_download_url_gets_a_fresh_one(stack: Stack, status: int) -> None:
    item = stack.media("document", filename="a.pdf")
    stack.sim.add_fault(op="download", media_id=item.record.id, status=status)
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    assert stack.verified(item)
    assert lookups(stack, item.record.id) == 2
    assert downloads(stack, item.record.id) == 2


def test_throttled_lookup_waits_for_retry_after(stack: Stack) -> None:
    item = stack.media("image")
    stack.sim.add_fault(op="lookup", media_id=item.record.id, status=429, retry_after=3)
    started = time.monotonic()
    assert stack.post(item).status_code == 200
    stack.wait_state(item.record.id, "queued")
    stack.wait_archived(item)
    assert time.monotonic() - started >= 3
    assert lookups(stack, item.record.id) == 2


def test_throttling_code_with_http_400_is_retried(stack: Stack) -> None:
    item = stack.media("audio")
    stack.sim.add_fault(
        op="lookup",
        media_id=item.record.id,
        status=400,
        error={"code": 130429, "message": "Rate limit hit"},
    )
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    assert lookups(stack, item.record.id) == 2


@pytest.mark.parametrize("op", ["lookup", "download"])
def test_server_errors_are_retried(stack: Stack, op: str) -> None:
    item = stack.media("video")
    stack.sim.add_fault(op=op, media_id=item.record.id, status=503, times=2)
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    assert stack.verified(item)
    assert lookups(stack, item.record.id) == 3


def test_permanent_error_is_recorded_not_retried(stack: Stack) -> None:
    item = stack.media("image")
    stack.sim.add_fault(
        op="lookup", media_id=item.record.id, status=400, error={"code": 100}, times=-1
    )
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")
    assert "code 100" in record["last_error"]
    assert lookups(stack, item.record.id) == 1
    assert not stack.object_exists(item.key)


def test_sha256_mismatch_never_becomes_visible_and_is_retried(stack: Stack) -> None:
    item = stack.media("document", size=9_000_000, filename="big.pdf")  # multipart
    stack.sim.add_fault(op="download", media_id=item.record.id, corrupt=True, times=-1)
    assert stack.post(item).status_code == 200

    def between_tries() -> tuple[str, str] | None:
        record = stack.state(item.record.id)
        if "sha256" not in record.get("last_error", "") or record.get("state") == "archiving":
            return None
        return record.get("state", ""), record.get("attempts", "")

    def no_upload_left_between_tries() -> bool:
        # A retry may begin at any moment and open its own upload: only a listing taken
        # while no try runs (the same resting state before and after) tells a leak.
        before = between_tries()
        uploads = stack.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return before is not None and uploads == [] and between_tries() == before

    wait_for(
        no_upload_left_between_tries,
        timeout=60,
        what="a failed try after a sha256 mismatch, with its multipart upload aborted",
    )
    assert not stack.object_exists(item.key)
    stack.sim.clear_faults()
    stack.wait_archived(item, timeout=90)
    assert stack.verified(item)


def test_webhook_digest_disagreeing_with_the_lookup_is_refused(stack: Stack) -> None:
    item = stack.media("image")
    other = stack.media("image")
    item.message["image"]["sha256"] = other.record.sha256_b64
    assert stack.post(item).status_code == 200
    wait_for(
        lambda: "webhook" in stack.state(item.record.id).get("last_error", ""),
        timeout=30,
        what="a webhook digest mismatch",
    )
    assert not stack.object_exists(item.key)


def test_truncated_download_is_retried(stack: Stack) -> None:
    item = stack.media("video", size=2_000_000)
    stack.sim.add_fault(op="download", media_id=item.record.id, truncate=True)
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    assert stack.verified(item)
    assert downloads(stack, item.record.id) == 2


def test_foreign_download_host_never_gets_the_token(stack: Stack) -> None:
    item = stack.media("image")
    stack.sim.add_fault(op="lookup", media_id=item.record.id, foreign=True, times=-1)
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")
    assert "WHATSAPP_MEDIA_HOSTS" in record["last_error"]
    assert stack.sim.foreign_requests() == []
    assert not stack.object_exists(item.key)


def test_media_past_its_deadline_is_failed_without_a_download(stack: Stack) -> None:
    item = stack.media("image", timestamp=int(time.time()) - 8 * 24 * 3600)
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")
    assert record["last_error"].startswith("expired")
    assert lookups(stack, item.record.id) == 0
    assert downloads(stack, item.record.id) == 0
    worker = stack.worker
    assert worker is not None
    wait_for(lambda: item.record.id in worker.log_text(), timeout=10, what="the error log")
    [line] = [
        line
        for line in worker.log_text().splitlines()
        if item.record.id in line and '"event": "failed"' in line
    ]
    assert '"level": "error"' in line
    assert '"reason_label": "expired"' in line


def test_redirect_to_a_foreign_host_never_gets_the_token(stack: Stack) -> None:
    item = stack.media("image")
    stack.sim.add_fault(op="download", media_id=item.record.id, redirect=True, times=-1)
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")
    assert "WHATSAPP_MEDIA_HOSTS" in record["last_error"]
    assert stack.sim.foreign_requests() == []
    assert not stack.object_exists(item.key)


def test_downloads_carry_an_explicit_user_agent(stack: Stack) -> None:
    item = stack.media("image")
    assert stack.post(item).status_code == 200
    stack.wait_archived(item)
    seen = [r for r in stack.sim.requests() if r["media_id"] == item.record.id]
    assert {r["op"] for r in seen} == {"lookup", "download"}
    assert all(r["user_agent"].startswith("wa-media-archiver/") for r in seen)


def test_file_over_the_limit_is_refused_before_download(stack: Stack) -> None:
    item = stack.media("document", size=MAX_MEDIA_BYTES + 1, filename="huge.pdf")
    assert stack.post(item).status_code == 200
    record = stack.wait_state(item.record.id, "failed")
    assert "MAX_MEDIA_BYTES" in record["last_error"]
    assert downloads(stack, item.record.id) == 0


def test_download_past_the_announced_size_stops(stack: Stack) -> None:
    item = stack.media("document", size=MAX_MEDIA_BYTES + 3_000_000, filename="liar.pdf")
    stack.sim.add_fault(op="lookup", media_id=item.record.id, file_size=1000, times=-1)
    assert stack.post(item).status_code == 200

    def stopped() -> dict[str, str] | None:
        record = stack.state(item.record.id)
        return record if "1000 bytes announced" in record.get("last_error", "") else None

    wait_for(stopped, timeout=60, what="download stopped at the announced size")
    assert not stack.object_exists(item.key)
    assert stack.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert stack.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_too_big_is_answered_once_even_when_delivered_twice(stack: Stack) -> None:
    message = webhooks.too_big_message(sender="4915112345678")
    before = stack.task_counts()
    assert stack.post(message).status_code == 200
    assert stack.post(message).status_code == 200

    def replies() -> list[dict[str, object]]:
        return [m for m in stack.sim.sent_messages() if m["to"] == "4915112345678"]

    wait_for(replies, timeout=30, what="the warning")
    # The simulator holds the message before the worker records it sent ("sending" until then).
    wait_for(
        lambda: stack.redis.get(f"wa:reply:{PHONE}:{message['id']}") == "sent",
        timeout=30,
        what="the warning recorded as sent",
    )
    assert 0 < stack.redis.ttl(f"wa:reply:{PHONE}:{message['id']}") <= 8 * 24 * 3600
    # A third delivery after the reply went out changes nothing either.
    assert stack.post(message).status_code == 200
    # Each copy's reply task has ended: one sent, two skipped. A copy that came while the first
    # was sending met its claim and looked again a minute later.
    stack.wait_tasks(before, {("reply", "sent"): 1, ("reply", "duplicate"): 2}, timeout=150)
    [reply] = replies()
    assert reply["body"] == REPLY_TEXT


def test_reengagement_error_is_recorded_not_retried(stack: Stack) -> None:
    sender = "4477009001122"
    stack.sim.add_fault(op="send", media_id=sender, status=400, error={"code": 131047}, times=-1)
    message = webhooks.too_big_message(sender=sender)
    assert stack.post(message).status_code == 200
    # The ledger reads "sending" while the send is under way, then its outcome.
    ledger = wait_for(
        lambda: (
            (value := stack.redis.get(f"wa:reply:{PHONE}:{message['id']}")) != "sending" and value
        ),
        timeout=30,
        what="the warning's outcome in the ledger",
    )
    assert ledger.startswith("failed")
    assert "131047" in ledger
    assert stack.sim.stats()["sends"].get(sender) == 1


def test_chunked_bodies_through_gunicorn(stack: Stack) -> None:
    item = stack.media("image")
    body = webhooks.encode(webhooks.envelope([item.message]))
    signature = webhooks.sign(body, stack.env.app_secret)

    def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    post = functools.partial(requests.post, f"{stack.web}/webhook", timeout=30)
    headers = {"X-Hub-Signature-256": signature}
    assert post(data=chunks(body), headers=headers).status_code == 200
    huge = body + b" " * (4 * 1024 * 1024)
    assert post(data=chunks(huge), headers=headers).status_code == 413
    stack.wait_archived(item)
