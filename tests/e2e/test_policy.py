"""The single account's archive policy from its variables (ARCHIVE_MEDIA_TYPES,
ARCHIVE_MIME_TYPES, ARCHIVE_MAX_BYTES, TOO_LARGE_REPLY), through real `web` and `worker`
processes of a deployment of their own (its own Redis): what the policy keeps is archived, the
rest skipped, listed and counted, and no 131052 warning reaches the simulator. (Accounts of a
file, each with its own policy: tests/e2e/test_tenancy.py.)"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from devstack import webhooks
from devstack.processes import free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import MediaRecord, SimulatorClient
from tests.e2e.conftest import BUCKET
from wa_media.cli import main as cli
from wa_media.core.layout import build_key

pytestmark = pytest.mark.e2e

POLICY = (
    ("ARCHIVE_MEDIA_TYPES", "image,document"),
    ("ARCHIVE_MIME_TYPES", "image/*,application/pdf"),
    ("ARCHIVE_MAX_BYTES", "image=30KB"),
    ("TOO_LARGE_REPLY", "false"),
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Deployment:
    env: StackEnv
    web: str
    web_metrics: int
    worker_metrics: int

    def post(self, messages: list[dict[str, Any]]) -> int:
        body, headers = webhooks.signed(webhooks.envelope(messages), self.env.app_secret)
        answer = requests.post(f"{self.web}/webhook", data=body, headers=headers, timeout=30)
        return answer.status_code

    def counts(self, port: int) -> Samples:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        answer.raise_for_status()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }


@pytest.fixture(scope="module")
def deployment(env: StackEnv, run_dir: Path) -> Iterator[Deployment]:
    redis = RedisServer(run_dir / "redis-policy", persistent=False).start()
    ours = dataclasses.replace(env, redis_url=redis.url, extra=env.extra + POLICY)
    log_dir = run_dir / "logs-policy"
    web_metrics, worker_metrics = free_port(), free_port()
    web, url = start_web(ours, log_dir, metrics_port=web_metrics)
    try:
        worker = start_worker(ours, log_dir, name="policy", metrics_port=worker_metrics)
        try:
            yield Deployment(ours, url, web_metrics, worker_metrics)
        finally:
            worker.stop()
    finally:
        web.stop()
        redis.stop()


def _count(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _exists(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return False
    return True


def _generated(sim: SimulatorClient, size: int, mime_type: str) -> MediaRecord:
    return sim.add_generated_media(size=size, seed=secrets.randbits(32), mime_type=mime_type)


def test_the_variables_policy_archives_what_it_keeps_and_skips_the_rest(
    deployment: Deployment, sim: SimulatorClient, s3: Any
) -> None:
    small, large = _generated(sim, 20_000, "image/jpeg"), _generated(sim, 40_000, "image/jpeg")
    video, audio = _generated(sim, 5_000, "video/mp4"), _generated(sim, 5_000, "audio/ogg")
    sender = "1650" + "".join(secrets.choice("0123456789") for _ in range(7))

    def message(kind: Any, record: MediaRecord, mime_type: str) -> dict[str, Any]:
        return webhooks.media_message(
            kind, record.id, sha256_b64=record.sha256_b64, mime_type=mime_type
        )

    messages = [
        message("image", small, "image/jpeg"),
        message("image", large, "image/jpeg"),
        message("video", video, "video/mp4"),
        message("audio", audio, "audio/ogg"),
        webhooks.too_big_message(sender=sender),
    ]
    web_before = deployment.counts(deployment.web_metrics)
    worker_before = deployment.counts(deployment.worker_metrics)
    assert deployment.post(messages) == 200

    key = build_key(
        "", webhooks.DEFAULT_PHONE_NUMBER_ID, int(messages[0]["timestamp"]), small.id, "image/jpeg"
    )
    wait_for(lambda: _exists(s3, key + ".json"), timeout=60, what="the small image archived")
    skipped = "wa_messages_skipped_total"
    wait_for(
        lambda: (
            _count(deployment.counts(deployment.worker_metrics), skipped, reason="policy_size")
            - _count(worker_before, skipped, reason="policy_size")
            == 1
        ),
        timeout=60,
        what="the large image skipped",
    )
    web_after = deployment.counts(deployment.web_metrics)
    assert (
        _count(web_after, skipped, reason="policy_type")
        - _count(web_before, skipped, reason="policy_type")
        == 2
    )
    assert (
        _count(web_after, "wa_replies_dropped_total", reason="reply_off")
        - _count(web_before, "wa_replies_dropped_total", reason="reply_off")
        == 1
    )

    result = CliRunner().invoke(cli, ["skipped", "--json"], env=deployment.env.environ())
    assert result.exit_code == 0, result.output
    rows = {(row["reason"], row["wamid"]) for row in map(json.loads, result.output.splitlines())}
    assert rows == {
        ("policy_size", messages[1]["id"]),
        ("policy_type", messages[2]["id"]),
        ("policy_type", messages[3]["id"]),
    }
    # No warning owed, none sent; the large image was never downloaded.
    assert [m for m in sim.sent_messages() if m.get("to") == sender] == []
    assert [r["op"] for r in sim.requests() if r["media_id"] == large.id] == ["lookup"]
