"""The token and the app secret never reach logs, exceptions, Redis or S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from devstack.processes import wait_for
from tests.e2e.conftest import BUCKET, Stack

pytestmark = pytest.mark.e2e


def redis_dump(redis: Redis) -> str:
    out = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        if kind == "string":
            value: Any = redis.get(key)
        elif kind == "hash":
            value = redis.hgetall(key)
        elif kind == "list":
            value = redis.lrange(key, 0, -1)
        elif kind == "set":
            value = redis.smembers(key)
        elif kind == "zset":
            value = redis.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        out.append(f"{key} {value}")
    return "\n".join(out)


def s3_dump(s3: Any) -> str:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=BUCKET, Key=obj["Key"])
            out.append(f"{obj['Key']} {head.get('Metadata')} {head.get('ContentDisposition')}")
            if obj["Key"].endswith(".json"):
                out.append(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode())
    return "\n".join(out)


def test_no_secret_is_written_anywhere(stack: Stack, run_dir: Path) -> None:
    token = stack.env.access_token
    app_secret = stack.env.app_secret
    # Failures of every kind first, so their logs and records are part of what is searched.
    assert stack.post(stack.media("image"), secret="forged").status_code == 403
    refused = stack.media("image")
    stack.sim.add_fault(op="download", media_id=refused.record.id, status=404)
    failing = stack.media("image")
    stack.sim.add_fault(op="lookup", media_id=failing.record.id, status=400, error={"code": 100})
    stack.sim.set_tokens(["rotated-elsewhere"])
    revoked = stack.media("document", filename="contract.pdf")
    assert stack.post(revoked, refused, failing).status_code == 200
    wait_for(
        lambda: "token" in stack.state(revoked.record.id).get("last_error", ""),
        timeout=30,
        what="a rejected token",
    )
    stack.sim.set_tokens([token])
    stack.wait_archived(revoked)
    stack.wait_archived(refused)
    stack.wait_state(failing.record.id, "failed")

    logs = "\n".join(path.read_text(errors="replace") for path in (run_dir / "logs").glob("*.log"))
    assert "media_retry" in logs
    assert "webhook_rejected" in logs
    everything = {"logs": logs, "redis": redis_dump(stack.redis), "s3": s3_dump(stack.s3)}
    for where, text in everything.items():
        assert token not in text, f"access token found in {where}"
        assert app_secret not in text, f"app secret found in {where}"
