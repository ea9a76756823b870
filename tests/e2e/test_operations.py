"""`wa-media status`, `verify` and `simulate` against the running stack."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from click.testing import CliRunner, Result

from devstack.processes import free_port, wait_for
from tests.e2e.conftest import BUCKET, Stack
from wa_media.cli import main


def sidecars(stack: Stack) -> list[str]:
    """Every sidecar in the bucket."""
    pages = stack.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".json")]


def run(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=stack.env.environ(), catch_exceptions=False)


def test_verify_passes_on_archived_objects_and_catches_a_corrupted_one(stack: Stack) -> None:
    items = [stack.media("image"), stack.media("document", filename="a.pdf")]
    assert stack.post(*items).status_code == 200
    for item in items:
        stack.wait_archived(item)

    clean = run(stack, "verify", "--bucket", BUCKET)
    assert clean.exit_code == 0, clean.output
    # Objects are counted, not files: each object once, with the sidecar beside it.
    summary = re.fullmatch(
        r"(\d+) objects checked against their sidecars: (\d+) verified, 0 mismatched",
        clean.stdout.strip(),
    )
    assert summary, clean.stdout
    checked = int(summary.group(1))
    assert checked == int(summary.group(2)) == len(sidecars(stack))
    assert checked >= len(items)

    # Flip one object's bytes behind the archive's back.
    data = bytearray(stack.object_bytes(items[0].key))
    data[len(data) // 2] ^= 0xFF
    stack.s3.put_object(Bucket=BUCKET, Key=items[0].key, Body=bytes(data))
    stack.s3.delete_object(Bucket=BUCKET, Key=items[1].key)

    dirty = run(stack, "verify", "--bucket", BUCKET)
    assert dirty.exit_code == 1
    # Each line names the object that failed, then the sidecar it was checked against.
    assert (
        f"MISMATCH s3://{BUCKET}/{items[0].key}: sha256 of the object differs from the "
        f"sidecar's (sidecar {items[0].key}.json)\n"
    ) in dirty.stdout
    assert (
        f"MISMATCH s3://{BUCKET}/{items[1].key}: object is missing (sidecar {items[1].key}.json)\n"
    ) in dirty.stdout
    assert (
        f"{checked} objects checked against their sidecars: {checked - 2} verified, 2 mismatched"
    ) in dirty.stdout
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


def test_simulate_uploads_a_file_that_gets_archived_byte_for_byte(
    stack: Stack, tmp_path: Path
) -> None:
    data = b"%PDF-1.7\n" + os.urandom(60_000)
    report = tmp_path / "Delivery note 7.pdf"
    report.write_bytes(data)
    result = run(stack, "simulate", stack.web, "--file", str(report))
    assert result.exit_code == 0, result.output
    (media_id,) = re.findall(r"uploaded Delivery note 7\.pdf as media (\S+)", result.stderr)
    archived = stack.wait_state(media_id, "archived")
    assert stack.object_bytes(archived["key"]) == data
    sidecar = stack.sidecar(archived["key"])
    assert sidecar is not None
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert (sidecar["type"], sidecar["mime_type"]) == ("document", "application/pdf")
    assert sidecar["filename"] == "Delivery note 7.pdf"
    # The webhook announced the file's digest: nothing was archived unverified.
    assert sidecar["anomalies"] == []


def test_skipped_lists_what_looked_like_media_with_its_reason(stack: Stack) -> None:
    """A media message `web` cannot turn into work is listed with its wamid and reason; a text
    is only counted."""
    no_id = stack.media("image").message
    del no_id["image"]["id"]
    text = {
        "from": "1",
        "id": "wamid.text",
        "timestamp": "1",
        "type": "text",
        "text": {"body": "x"},
    }
    assert stack.post(no_id, text).status_code == 200

    result = run(stack, "skipped", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [row for row in rows if row["wamid"] == no_id["id"]]
    assert [(row["reason"], row["type"], row["phone_number_id"]) for row in mine] == [
        ("malformed", "image", "106540352242922")
    ]
    assert not [row for row in rows if row["wamid"] == "wamid.text"]
    table = run(stack, "skipped")
    assert no_id["id"] in table.stdout
    assert "malformed" in table.stdout


def test_failed_names_the_customer(stack: Stack) -> None:
    gone = stack.media("image")
    gone.message["from_user_id"] = "US.13491208655302741918"
    stack.sim.add_fault(op="lookup", media_id=gone.record.id, status=404, times=-1)
    assert stack.post(gone).status_code == 200
    stack.wait_state(gone.record.id, "failed")
    result = run(stack, "failed")
    [line] = [row for row in result.stdout.splitlines() if row.startswith(gone.record.id)]
    assert "16505551234 US.13491208655302741918" in line
