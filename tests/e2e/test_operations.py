"""`wa-media status`, `verify` and `simulate` against the running stack."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner, Result

from devstack.processes import free_port, wait_for
from tests.e2e.conftest import BUCKET, Stack
from worker.cli import main


def run(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=stack.env.environ(), catch_exceptions=False)


def test_verify_passes_on_archived_objects_and_catches_a_corrupted_one(stack: Stack) -> None:
    items = [stack.media("image"), stack.media("document", filename="a.pdf")]
    assert stack.post(*items).status_code == 200
    for item in items:
        stack.wait_archived(item)

    clean = run(stack, "verify", "--bucket", BUCKET)
    assert clean.exit_code == 0, clean.output
    assert " 0 mismatched" in clean.stdout

    # Flip one object's bytes behind the archive's back.
    data = bytearray(stack.object_bytes(items[0].key))
    data[len(data) // 2] ^= 0xFF
    stack.s3.put_object(Bucket=BUCKET, Key=items[0].key, Body=bytes(data))
    stack.s3.delete_object(Bucket=BUCKET, Key=items[1].key)

    dirty = run(stack, "verify", "--bucket", BUCKET)
    assert dirty.exit_code == 1
    assert f"MISMATCH s3://{BUCKET}/{items[0].key}.json: sha256" in dirty.stdout
    assert f"MISMATCH s3://{BUCKET}/{items[1].key}.json: object is missing" in dirty.stdout
    # Leave the bucket clean for the other tests' verify runs.
    stack.s3.delete_object(Bucket=BUCKET, Key=items[0].key + ".json")
    stack.s3.delete_object(Bucket=BUCKET, Key=items[1].key + ".json")


def test_verify_exits_3_when_s3_cannot_be_read(stack: Stack) -> None:
    env = {**stack.env.environ(), "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(main, ["verify", "--bucket", BUCKET], env=env)
    assert result.exit_code == 3
    assert "S3 listing failed" in result.stderr


def test_status_shows_pending_media_and_their_deadline(stack: Stack) -> None:
    stuck = stack.media("video", size=50_000)
    stack.sim.add_fault(op="lookup", media_id=stuck.record.id, status=503, times=-1)
    assert stack.post(stuck).status_code == 200
    wait_for(
        lambda: "503" in stack.state(stuck.record.id).get("last_error", ""),
        timeout=30,
        what="a retry scheduled",
    )
    result = run(stack, "status", "--json", "--nearest", "1000")
    assert result.exit_code == 0, result.output
    snapshot = json.loads(result.stdout)
    assert snapshot["pending"] >= 1
    listed = {item["media_id"]: item for item in snapshot["nearest"]}
    assert listed[stuck.record.id]["state"] == "queued"
    assert listed[stuck.record.id]["timestamp"] == int(stuck.message["timestamp"])
    assert set(snapshot["queues"]) == {"media", "replies"}

    text = run(stack, "status")
    assert text.exit_code == 0
    assert "deadline in 6d" in text.stdout

    stack.sim.clear_faults()


def test_status_exits_3_without_redis(stack: Stack) -> None:
    env = {**stack.env.environ(), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 3


def test_simulate_sends_signed_webhooks_the_deployment_accepts(stack: Stack) -> None:
    sent = run(stack, "simulate", stack.web, "--count", "3", "--messages", "2")
    assert sent.exit_code == 0, sent.output
    assert "3 x HTTP 200" in sent.stdout

    # Another secret, from a variable or a file: never from the command line.
    environ = {**stack.env.environ(), "OTHER_SECRET": "not-the-app-secret"}
    wrong = CliRunner().invoke(
        main, ["simulate", stack.web, "--secret-env", "OTHER_SECRET"], env=environ
    )
    assert wrong.exit_code == 1
    assert "1 x HTTP 403" in wrong.stdout

    unreachable = run(stack, "simulate", f"http://127.0.0.1:{free_port()}")
    assert unreachable.exit_code == 3


def test_simulate_announces_a_real_media_that_gets_archived(stack: Stack) -> None:
    record = stack.sim.add_generated_media(size=10_000, seed=7, mime_type="image/jpeg")
    result = run(stack, "simulate", stack.web, "--kind", "image", "--media-id", record.id)
    assert result.exit_code == 0, result.output
    archived = stack.wait_state(record.id, "archived")
    assert hashlib.sha256(stack.object_bytes(archived["key"])).hexdigest() == record.sha256
