"""S3_SSE=AES256 against SeaweedFS: every object and sidecar the worker writes is encrypted.

SeaweedFS encrypts with keys of its own (SSE-S3) and says so in HeadObject, as S3 does. It has no
KMS behind it here, so `aws:kms` is covered by the unit tests of the request arguments only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from click.testing import CliRunner

from devstack import webhooks
from devstack.processes import wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import Simulator, SimulatorClient
from tests.conftest import redis_db
from wa_media.cli import main
from wa_media.core.index import wamid_entry_key
from wa_media.core.layout import build_key
from wa_media.stores.s3 import PART_SIZE

ENCRYPTED_BUCKET = "wa-encrypted"


@pytest.fixture(scope="module")
def encrypted(
    simulator: Simulator, seaweed: SeaweedFS, s3: Any, run_dir: Path
) -> Iterator[tuple[str, StackEnv]]:
    """`web` and a worker with S3_SSE=AES256 archiving into a bucket of their own."""
    try:
        s3.create_bucket(Bucket=ENCRYPTED_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    log_dir = run_dir / "logs-encryption"
    for redis_url in redis_db(14):
        env = StackEnv.local(
            simulator, seaweed, redis_url, ENCRYPTED_BUCKET, extra=(("S3_SSE", "AES256"),)
        )
        web, url = start_web(env, log_dir)
        try:
            worker = start_worker(env, log_dir, name="encryption", concurrency=2)
            try:
                yield url, env
            finally:
                worker.stop()
        finally:
            web.stop()


def _post(url: str, env: StackEnv, messages: list[dict[str, Any]]) -> int:
    body, headers = webhooks.signed(webhooks.envelope(messages), env.app_secret)
    return requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10).status_code


def _sidecar(s3: Any, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=ENCRYPTED_BUCKET, Key=key + ".json")["Body"].read()
    except ClientError:
        return None
    document: dict[str, Any] = json.loads(body)
    return document


def test_objects_and_sidecars_are_encrypted_with_sse_s3(
    encrypted: tuple[str, StackEnv], sim: SimulatorClient, s3: Any
) -> None:
    url, env = encrypted
    # One media under a part (a single PUT), one over (a multipart upload).
    media = [
        ("image", "image/jpeg", 40_000),
        ("video", "video/mp4", PART_SIZE + 123_457),
    ]
    sent = []
    for kind, mime, size in media:
        record = sim.add_generated_media(size=size, seed=secrets.randbits(32), mime_type=mime)
        message = webhooks.media_message(
            kind, record.id, sha256_b64=record.sha256_b64, mime_type=mime
        )
        key = build_key(
            "", webhooks.DEFAULT_PHONE_NUMBER_ID, int(message["timestamp"]), record.id, mime
        )
        sent.append((record, message, key))
    assert _post(url, env, [message for _, message, _ in sent]) == 200

    for record, message, key in sent:
        document = wait_for(lambda key=key: _sidecar(s3, key), timeout=90, what=key)
        assert document["sha256"] == record.sha256
        # The index entries too (docs/s3-archive.md, "The index").
        entries = (wamid_entry_key("", message["id"]), f"_index/by-media-id/{record.id}")
        for written in (key, key + ".json", *entries):
            head = s3.head_object(Bucket=ENCRYPTED_BUCKET, Key=written)
            assert head.get("ServerSideEncryption") == "AES256", written
            assert "SSEKMSKeyId" not in head
        body = s3.get_object(Bucket=ENCRYPTED_BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == record.sha256

    # `wa-media verify` reads the encrypted objects back like any other.
    result = CliRunner().invoke(
        main, ["verify", "--bucket", ENCRYPTED_BUCKET], env=env.environ(), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"{len(sent)} verified, 0 mismatched" in result.stdout
