"""Logs and metrics of a deployment of its own: exact counts scraped over HTTP from `web` and
from the worker, and a media's steps in the JSON logs.

Its own Redis database, `web` and prefork worker, so that no other test's media are counted.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, free_port, wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.conftest import Sent, Stack, stack_env

pytestmark = pytest.mark.e2e

NUMBER = webhooks.DEFAULT_PHONE_NUMBER_ID
STEPS = ("looked_up", "downloaded", "verified", "archived")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Observed:
    web: str
    worker: Service
    env: StackEnv
    redis: Redis
    log_dir: Path
    metrics_port: int
    web_metrics_port: int

    def stack(self, sim: SimulatorClient, s3: Any) -> Stack:
        return Stack(self.web, self.worker, self.env, sim, s3, self.redis)


@pytest.fixture(scope="module")
def observed(simulator: Simulator, seaweed: SeaweedFS, run_dir: Path) -> Iterator[Observed]:
    log_dir = run_dir / "logs-observability"
    for redis_url in redis_db(13):
        env = stack_env(simulator, seaweed, redis_url)
        web_port = free_port()
        web_service, url = start_web(env, log_dir, metrics_port=web_port)
        port = free_port()
        try:
            worker = start_worker(env, log_dir, name="observed", metrics_port=port)
        except BaseException:
            web_service.stop()
            raise
        try:
            redis = Redis.from_url(redis_url, decode_responses=True)
            yield Observed(url, worker, env, redis, log_dir, port, web_port)
        finally:
            worker.stop()
            web_service.stop()


def scrape(url: str) -> Samples:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def task(name: str, outcome: str, reason: str = "") -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("wa_tasks_total", (("outcome", outcome), ("reason", reason), ("task", name)))


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_counts_and_steps_of_every_media(observed: Observed, sim: SimulatorClient, s3: Any) -> None:
    stack = observed.stack(sim, s3)
    web_metrics = f"http://127.0.0.1:{observed.web_metrics_port}/metrics"
    # Not on the webhook's port: only on the metrics port, which the master serves.
    assert requests.get(f"{observed.web}/metrics", timeout=5).status_code == 404
    worker_metrics = f"http://127.0.0.1:{observed.metrics_port}/metrics"

    # Served before anything happened: the state, and the worker's metrics without labels.
    before = scrape(worker_metrics)
    assert before[("wa_archived_bytes_total", ())] == 0
    assert before[("wa_download_seconds_count", ())] == 0
    assert scrape(web_metrics)[("wa_calls_paused", ())] == 0

    small, large, document = (
        stack.media("image", size=20_000),
        stack.media("video", size=9_000_000),  # past one 8 MiB part: a multipart upload
        stack.media("document", size=150_000, filename="invoice.pdf"),
    )
    flaky = stack.media("audio", size=40_000)
    sim.add_fault(op="download", media_id=flaky.record.id, status=500, times=1)
    missing = stack.media("image")
    sim.add_fault(op="lookup", media_id=missing.record.id, status=400, error={"code": 100})
    customer = f"49151{secrets.randbelow(10**8):08d}"
    too_big = webhooks.too_big_message(sender=customer)

    assert stack.post(small, large, document).status_code == 200
    assert stack.post(flaky, too_big).status_code == 200
    assert stack.post(missing).status_code == 200
    assert stack.post(small, secret="forged-secret").status_code == 403
    unsigned = requests.post(f"{observed.web}/webhook", data=b"{}", timeout=10)
    assert unsigned.status_code == 401
    for sent in (small, large, document, flaky):
        stack.wait_archived(sent)
    stack.wait_state(missing.record.id, "failed")
    wait_for(
        lambda: [m for m in sim.sent_messages() if m["to"] == customer],
        timeout=30,
        what="the warning sent",
    )
    # Delivered again once archived: answered 200, and no archive task runs for it.
    assert stack.post(small).status_code == 200

    # A rejected token pauses every call to Meta, which web's gauge shows.
    sim.set_tokens(["rotated-elsewhere"])
    revoked = stack.media("image", size=33_333)
    assert stack.post(revoked).status_code == 200
    wait_for(lambda: scrape(web_metrics)[("wa_calls_paused", ())] == 1, timeout=30, what="paused")
    sim.set_tokens([stack.env.access_token])
    stack.wait_archived(revoked)

    archived: list[Sent] = [small, large, document, flaky, revoked]
    sizes = sum(sent.record.file_size for sent in archived)

    def settled() -> Samples | None:
        samples = scrape(worker_metrics)
        done = samples.get(task("fanout", "done"), 0) == 5
        sent = samples.get(task("reply", "sent"), 0) == 1
        return samples if done and sent else None

    worker = wait_for(settled, timeout=30, what="the fan-outs and the reply counted")
    assert worker[task("media", "archived")] == len(archived)
    assert worker[task("media", "failed", "not_found")] == 1
    assert worker[task("media", "retried", "provider_unavailable")] == 1
    assert worker[task("media", "retried", "token_rejected")] >= 1
    assert (task("media", "duplicate")) not in worker
    assert worker[("wa_retries_total", (("reason", "provider_unavailable"),))] == 1
    assert worker[("wa_token_rejected_total", (("phone_number_id", NUMBER),))] == 1
    assert worker[("wa_archived_bytes_total", ())] == sizes
    for histogram in ("wa_lookup_seconds", "wa_download_seconds", "wa_upload_seconds"):
        assert worker[(f"{histogram}_count", ())] == len(archived), histogram
        assert worker[(f"{histogram}_bucket", (("le", "+Inf"),))] == len(archived)
        assert worker[(f"{histogram}_bucket", (("le", "900.0"),))] == len(archived)
        assert 0 < worker[(f"{histogram}_sum", ())] < 60
    # These webhooks carry no download URL: each archived media took one look-up and one
    # download in its last try; the flaky one's first download answered 500.
    for kind in ("lookup", "download"):
        calls = (("kind", kind),)
        assert worker[("wa_media_provider_calls_count", calls)] == len(archived)
        assert worker[("wa_media_provider_calls_sum", calls)] == len(archived)
        assert worker[("wa_media_provider_calls_bucket", (*calls, ("le", "1.0")))] == len(archived)
    assert worker[("wa_provider_calls_total", (("kind", "download"),))] == len(archived) + 1
    assert worker[("wa_provider_calls_total", (("kind", "send"),))] == 1

    web = scrape(web_metrics)
    requests_by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in web.items()
        if name == "wa_webhook_requests_total"
    }
    assert requests_by_status == {"200": 5, "403": 1, "401": 1}
    assert web[("wa_queue_depth", (("queue", "media"),))] == 0
    assert web[("wa_queue_depth", (("queue", "replies"),))] == 0
    assert web[("wa_media_pending", ())] == 0
    assert web[("wa_media_failed", ())] == 1
    assert web[("wa_oldest_pending_age_seconds", ())] == 0
    assert math.isinf(web[("wa_nearest_deadline_seconds", ())])
    wait_for(lambda: scrape(web_metrics)[("wa_calls_paused", ())] == 0, timeout=30, what="resumed")

    # The worker's JSON lines: each step of each media, with its ids and durations.
    events = json_lines(observed.log_dir / "worker-observed.log")
    for sent in archived:
        mine = [e for e in events if e.get("media_id") == sent.record.id]
        steps = {e["event"]: e for e in mine if e["event"] in STEPS}
        assert set(steps) == set(STEPS), sent.record.id
        task_ids = {e["task_id"] for e in steps.values()}
        assert len(task_ids) == 1
        assert None not in task_ids
        for event in steps.values():
            assert event["wamid"] == sent.message["id"]
            assert event["phone_number_id"] == NUMBER
            assert event["task"] == "media"
            assert isinstance(event["duration_ms"], int | float)
            assert event["duration_ms"] >= 0
        for name in ("downloaded", "verified", "archived"):
            assert steps[name]["bytes"] == sent.record.file_size
        assert steps["archived"]["key"] == sent.key
    [failed] = [
        e for e in events if e.get("media_id") == missing.record.id and e["event"] == "failed"
    ]
    assert (failed["level"], failed["reason_label"], failed["task"]) == (
        "error",
        "not_found",
        "media",
    )
    assert failed["wamid"] == missing.message["id"]
    retries = [
        e for e in events if e.get("media_id") == flaky.record.id and e["event"] == "media_retry"
    ]
    assert [e["reason_label"] for e in retries] == ["provider_unavailable"]
    [replied] = [e for e in events if e["event"] == "replied"]
    assert (replied["wamid"], replied["task"]) == (too_big["id"], "reply")
    assert "duration_ms" in replied

    # web's lines: one received and one enqueued per request, naming its media and wamids.
    web_events = [e for path in observed.log_dir.glob("web-*.log") for e in json_lines(path)]
    accepted = {small.record.id: 2}  # delivered again as a duplicate; every other media once
    for sent in (small, large, document, flaky, missing, revoked):
        mine = [e for e in web_events if sent.record.id in e.get("media_ids", [])]
        times = accepted.get(sent.record.id, 1)
        assert sorted(e["event"] for e in mine) == ["enqueued"] * times + ["received"] * times, (
            sent.record.id
        )
        for event in mine:
            assert sent.message["id"] in event["wamids"]
            assert event["phone_number_ids"] == [NUMBER]
            assert event["duration_ms"] >= 0
        assert all(e["task_id"] for e in mine if e["event"] == "enqueued")
    # Every log line of both processes is free of the secrets.
    for path in observed.log_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        assert stack.env.access_token not in text
        assert stack.env.app_secret not in text
