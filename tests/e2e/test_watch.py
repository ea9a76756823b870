"""Watching the archive from outside: the sweep's last success (wa:sweep:last, served by `web`
as wa_sweep_last_success_timestamp_seconds) and the media archived lately (wa:archived, counted
by `wa-media status`).

A private redis-server, so that nothing else sweeps or archives into what is counted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack.processes import free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import start_beat, start_web, start_worker
from graphsim import Simulator
from tests.e2e.conftest import stack_env
from wa_media.cli import main
from wa_media.stores.broker import REPLIES_QUEUE, SWEEP_TASK, make_celery
from wa_media.stores.records import (
    ARCHIVED_KEPT_SECONDS,
    ARCHIVED_KEY,
    SWEEP_LAST_KEY,
    MediaRef,
    MediaStateStore,
)
from wa_media.stores.snapshot import archived_counts, read_snapshot

pytestmark = pytest.mark.e2e

GAUGE = "wa_sweep_last_success_timestamp_seconds"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("watch-redis"), persistent=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis(private_redis: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(private_redis.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def scrape(url: str) -> dict[str, float]:
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if not sample.labels
    }


def worker_sweeps(port: int, outcome: str) -> float:
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "wa_tasks_total"
        and sample.labels.get("task") == "sweep"
        and sample.labels.get("outcome") == outcome
    )


def test_each_completed_sweep_is_served_and_a_skipped_one_is_not(
    redis: Redis,
    private_redis: RedisServer,
    simulator: Simulator,
    seaweed: SeaweedFS,
    tmp_path: Path,
) -> None:
    env = stack_env(simulator, seaweed, private_redis.url)
    logs = tmp_path / "logs"
    web_metrics_port = free_port()
    web, _ = start_web(env, logs, metrics_port=web_metrics_port)
    # Web serves its metrics on a port of their own (WEB_METRICS_PORT).
    url = f"http://127.0.0.1:{web_metrics_port}"
    try:
        # Before any sweep, the gauge reads 0: WaMediaSweepStalled sees "never" as long ago.
        assert scrape(url)[GAUGE] == 0
        metrics_port = free_port()
        worker = start_worker(env, logs, name="watch", metrics_port=metrics_port)
        beat = start_beat(env, logs)
        try:
            started = time.time()

            def swept() -> float | None:
                served = scrape(url)[GAUGE]
                return served if served > started else None

            first = wait_for(swept, timeout=60, what="a sweep served by web")
            ttl = redis.ttl(SWEEP_LAST_KEY)
            assert 0 < ttl <= 24 * 3600
            assert first <= time.time()
            # From here on the test sends the sweeps itself, so none runs unless sent.
            beat.stop()

            # A sweep that finds another one running (the lock held) completes nothing: the
            # time served stays where it was.
            celery = make_celery(private_redis.url)
            # Taken only once no sweep holds it: one that held it wrote its time before.
            wait_for(
                lambda: redis.set("wa:sweep-lock", "held by the test", nx=True, ex=120),
                timeout=30,
                what="the sweep lock",
            )
            seen = float(redis.get(SWEEP_LAST_KEY) or 0)
            skipped = worker_sweeps(metrics_port, "skipped")
            celery.send_task(SWEEP_TASK, queue=REPLIES_QUEUE)
            wait_for(
                lambda: worker_sweeps(metrics_port, "skipped") > skipped,
                timeout=30,
                what="a sweep skipped",
            )
            assert float(redis.get(SWEEP_LAST_KEY) or 0) == seen
            assert scrape(url)[GAUGE] == seen

            # A lock whose holder, a process of this host, died mid-sweep (a killed worker) is
            # taken over at once rather than after its 60 s.
            gone = subprocess.Popen([sys.executable, "-c", "pass"])
            gone.wait()
            redis.set("wa:sweep-lock", f"{socket.gethostname()}:{gone.pid}:dead", ex=120)
            celery.send_task(SWEEP_TASK, queue=REPLIES_QUEUE)
            wait_for(lambda: scrape(url)[GAUGE] > seen, timeout=30, what="a sweep completed")
            # The sweep let go of the lock it took.
            assert redis.get("wa:sweep-lock") is None
        finally:
            beat.stop()
            worker.stop()
    finally:
        web.stop()


def test_archived_media_are_counted_by_the_hour_and_the_day(
    redis: Redis, private_redis: RedisServer
) -> None:
    store = MediaStateStore(Redis.from_url(private_redis.url))
    now = time.time()
    # Archived before this test: 2 hours ago, 23 hours ago, and 2 days ago (past the day kept).
    redis.zadd(
        ARCHIVED_KEY,
        {"two-hours": now - 7200, "yesterday": now - 23 * 3600, "old": now - 2 * 86400},
    )
    refs = {media_id: MediaRef("106540352242922", media_id) for media_id in ("m1", "m2", "m3")}
    for media_id, ref in refs.items():
        store.mark_archived(ref, f"key/{media_id}")
    # Archived twice (a retry that found the sidecar): counted once.
    store.mark_archived(refs["m1"], "key/m1")

    counts = archived_counts(store.redis)
    assert (counts.last_hour, counts.last_day) == (3, 5)
    # The day's window is kept, older members are trimmed, and the set expires.
    assert redis.zscore(ARCHIVED_KEY, "old") is None
    assert 0 < redis.ttl(ARCHIVED_KEY) <= ARCHIVED_KEPT_SECONDS
    assert redis.hget(refs["m1"].key, "state") == "archived"

    # A failed media is not archived.
    store.mark_failed(MediaRef("106540352242922", "m4"), "404")
    assert archived_counts(store.redis).last_day == 5

    env = {"REDIS_URL": private_redis.url}
    text = CliRunner().invoke(main, ["status"], env=env, catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert "archived last hour         3" in text.stdout
    assert "archived last day          5" in text.stdout
    assert "last sweep          none in the last day" in text.stdout

    redis.set(SWEEP_LAST_KEY, f"{now - 30:.3f}")
    assert read_snapshot(store.redis, now=now).sweep_last == pytest.approx(now - 30, abs=0.01)
    as_json = CliRunner().invoke(main, ["status", "--json"], env=env, catch_exceptions=False)
    document = json.loads(as_json.stdout)
    assert document["archived"] == {"last_hour": 3, "last_day": 5}
    assert document["sweep_last"] == pytest.approx(now - 30, abs=0.01)
