"""The processes themselves: start-up validation, and surviving a Redis restart."""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis

from devstack.processes import Service, free_port, port_open, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import (
    StackEnv,
    WorkerPool,
    deployed_pool,
    start_beat,
    start_web,
    start_worker,
)
from graphsim import Simulator
from tests.e2e.conftest import BUCKET, Stack, stack_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_worker_refuses_to_start_without_a_bucket(env: StackEnv) -> None:
    environ = env.environ()
    del environ["S3_BUCKET"]
    done = run([str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"], environ)
    assert done.returncode != 0
    assert "S3_BUCKET is required" in done.stderr


def test_worker_names_an_invalid_variable(env: StackEnv) -> None:
    environ = {**env.environ(), "MAX_MEDIA_BYTES": "lots"}
    done = run([str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"], environ)
    assert done.returncode != 0
    assert "MAX_MEDIA_BYTES is invalid" in done.stderr


def test_worker_names_a_metrics_port_it_cannot_serve(env: StackEnv, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        environ = {
            **env.environ(),
            "WORKER_METRICS_PORT": str(taken.getsockname()[1]),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        }
        done = run([str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"], environ)
    assert done.returncode == 2
    assert "WORKER_METRICS_PORT" in done.stderr
    assert list(tmp_path.iterdir()) == []


def _free_run(length: int) -> int:
    """The first of `length` consecutive ports nobody listens on right now."""
    for _ in range(50):
        first = free_port()
        if first + length <= 65536 and all(
            not port_open(port) for port in range(first, first + length)
        ):
            return first
    raise AssertionError(f"no {length} consecutive free ports")


def _served_port(worker: Service) -> int:
    def logged() -> int | None:
        # A JSON line, or the readable form: `metrics_served   port=9809 ports=9808-9815`.
        found = re.search(r"metrics_served\W.*?\bport\W+(\d+)", worker.log_text())
        return int(found.group(1)) if found else None

    return wait_for(logged, timeout=10, what="metrics_served")


def test_two_workers_on_one_host_serve_metrics_on_a_shared_range(
    env: StackEnv, tmp_path: Path
) -> None:
    """One worker per core (docs/architecture.md, "Scaling"): a range lets each take its own
    port, logged."""
    first = _free_run(3)
    ports = f"{first}-{first + 2}"
    workers = []
    with socket.socket() as taken:  # something else holds the range's first port
        taken.bind(("", first))
        taken.listen()
        try:
            for name in ("core1", "core2"):
                workers.append(start_worker(env, tmp_path, name=name, metrics_port=ports))
            served = sorted(_served_port(worker) for worker in workers)
            assert served == [first + 1, first + 2]
            for port in served:
                answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                assert answer.status_code == 200
                assert "wa_archived_bytes_total" in answer.text
            # A third finds the whole range taken and says so.
            environ = {
                **env.environ(),
                "WORKER_METRICS_PORT": ports,
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "third"),
            }
            done = run([str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"], environ)
            assert done.returncode == 2
            assert f"WORKER_METRICS_PORT={ports} cannot be served" in done.stderr
        finally:
            for worker in workers:
                worker.stop()


def test_web_refuses_to_start_without_an_app_secret(env: StackEnv) -> None:
    environ = env.environ()
    del environ["WHATSAPP_APP_SECRET"]
    argv = [str(BIN / "gunicorn"), "--bind", "127.0.0.1:0", "webhook.app:create_app()"]
    done = run(argv, environ)
    assert done.returncode != 0
    assert "WHATSAPP_APP_SECRET is required" in done.stderr


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


DEPLOYED = deployed_pool()
# The Procfile's pool, and prefork (Celery's default), which must survive Redis as well.
POOLS = pytest.mark.parametrize("pool", [DEPLOYED, WorkerPool("prefork", 2)], ids=lambda p: p.name)


@POOLS
def test_redis_restart_503_then_recovery(
    pool: WorkerPool,
    own_redis: RedisServer,
    simulator: Simulator,
    seaweed: SeaweedFS,
    s3: object,
    tmp_path: Path,
) -> None:
    env = stack_env(simulator, seaweed, own_redis.url)
    web, url = start_web(env, tmp_path / "logs")
    worker = start_worker(
        env, tmp_path / "logs", name="restart", pool=pool.name, concurrency=pool.concurrency
    )
    stack = Stack(
        url,
        worker,
        env,
        simulator.client(),
        s3,
        Redis.from_url(own_redis.url, decode_responses=True),
    )
    try:
        first = stack.media("image")
        assert stack.post(first).status_code == 200
        stack.wait_archived(first)

        own_redis.stop()
        second = stack.media("image")
        assert stack.post(second).status_code == 503
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 503

        own_redis.start()
        wait_for(
            lambda: requests.get(f"{url}/readyz", timeout=5).status_code == 200,
            timeout=30,
            what="readyz after restart",
        )
        # Meta delivers the refused webhook again; the worker has reconnected by itself.
        assert stack.post(second).status_code == 200
        stack.wait_archived(second, timeout=90)
        assert stack.verified(second)
    finally:
        worker.stop()
        web.stop()


def test_s3_outage_is_retried_until_it_ends(
    own_redis: RedisServer, simulator: Simulator, tmp_path: Path
) -> None:
    seaweed = SeaweedFS(tmp_path / "weed", buckets=(BUCKET,)).start()
    env = stack_env(simulator, seaweed, own_redis.url)
    web, url = start_web(env, tmp_path / "logs")
    worker = start_worker(
        env,
        tmp_path / "logs",
        name="s3-outage",
        pool=DEPLOYED.name,
        concurrency=DEPLOYED.concurrency,
    )
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    stack = Stack(url, worker, env, simulator.client(), seaweed.client(), redis)
    try:
        seaweed.kill()
        item = stack.media("image")
        assert stack.post(item).status_code == 200
        wait_for(
            lambda: "S3" in stack.state(item.record.id).get("last_error", ""),
            timeout=60,
            what="a retry after an S3 failure",
        )
        assert stack.state(item.record.id)["state"] == "queued"
        seaweed.start()
        stack.wait_archived(item, timeout=120)
        assert stack.verified(item)
    finally:
        worker.stop()
        web.stop()
        seaweed.stop()


@POOLS
def test_worker_survives_redis_killed_with_tasks_in_flight(
    pool: WorkerPool,
    own_redis: RedisServer,
    simulator: Simulator,
    seaweed: SeaweedFS,
    s3: object,
    tmp_path: Path,
) -> None:
    # A short lease: the task cut off with the connection is swept back within seconds. So is
    # a task taken just before Redis died but not yet started (no lease yet): its message stays
    # unacknowledged for the visibility timeout, and the sweep finds its media still queued.
    env = dataclasses.replace(
        stack_env(simulator, seaweed, own_redis.url),
        extra=(("LEASE_SECONDS", "5"), ("SWEEP_STALLED_AFTER", "10")),
    )
    web, url = start_web(env, tmp_path / "logs")
    worker = start_worker(
        env, tmp_path / "logs", name="redis-kill", pool=pool.name, concurrency=pool.concurrency
    )
    beat = start_beat(env, tmp_path / "logs")
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    stack = Stack(url, worker, env, simulator.client(), s3, redis)
    try:
        item = stack.media("image")
        stack.sim.add_fault(op="download", media_id=item.record.id, latency=3)
        queued = [stack.media("image") for _ in range(3)]
        assert stack.post(item, *queued).status_code == 200
        stack.wait_state(item.record.id, "archiving")
        own_redis.kill()
        # Redis stays down until the worker has noticed, as in a real outage.
        wait_for(
            lambda: "Connection to broker lost" in worker.log_text(),
            timeout=30,
            what="the worker to notice",
        )
        own_redis.start()
        later = stack.media("image")
        wait_for(lambda: stack.post(later).status_code == 200, timeout=30, what="web accepts")
        for each in (item, *queued, later):
            stack.wait_archived(each, timeout=120)
        assert worker.alive(), worker.log_text()[-3000:]
    finally:
        beat.stop()
        worker.stop()
        web.stop()
