"""Workers that die, get SIGTERM or loop on poison; tokens revoked; work lost from the queue.

Workers run the Procfile's pool; the kills and signals whose effect depends on the pool run
with prefork too.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, WorkerPool, deployed_pool, start_beat, start_web, start_worker
from graphsim import Simulator
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, REPLY_TEXT, Stack
from wa_media.cli import main as cli
from wa_media.stores.records import MediaStateStore

pytestmark = pytest.mark.e2e

LEASE = 6
RATE = 5
EXTRA = (
    ("LEASE_SECONDS", str(LEASE)),
    ("SWEEP_STALLED_AFTER", "5"),
    ("TOKEN_PAUSE_SECONDS", "3"),
    ("GRAPH_RATE_LIMIT", str(RATE)),
)
DEPLOYED = deployed_pool()
PREFORK = WorkerPool("prefork", 1)
POOLS = pytest.mark.parametrize("pool", [DEPLOYED, PREFORK], ids=lambda p: p.name)


@dataclass
class Reliable:
    """A stack of its own (private Redis with AOF, beat, one worker) for killing things."""

    stack: Stack
    env: StackEnv
    logs: Path
    redis: RedisServer

    def worker(self, name: str, pool: WorkerPool = DEPLOYED) -> Service:
        if self.stack.worker is not None:
            self.stack.worker.stop()  # a previous one, dead or alive
        service = start_worker(
            self.env, self.logs, name=name, pool=pool.name, concurrency=pool.concurrency
        )
        self.stack.worker = service
        return service


@pytest.fixture(scope="module")
def reliable(
    simulator: Simulator, seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reliable]:
    root = tmp_path_factory.mktemp("reliable")
    redis = RedisServer(root / "redis", persistent=True).start()
    env = StackEnv.local(
        simulator,
        seaweed,
        redis.url,
        BUCKET,
        max_media_bytes=MAX_MEDIA_BYTES,
        reply_text=REPLY_TEXT,
        extra=EXTRA,
    )
    logs = root / "logs"
    web, url = start_web(env, logs)
    beat = start_beat(env, logs)
    client = Redis.from_url(redis.url, decode_responses=True)
    stack = Stack(url, None, env, simulator.client(), seaweed.client(), client)
    yield Reliable(stack, env, logs, redis)
    beat.stop()
    web.stop()
    redis.stop()


@pytest.fixture
def rel(reliable: Reliable) -> Iterator[Reliable]:
    reliable.stack.sim.clear_faults()
    reliable.stack.sim.set_tokens([reliable.env.access_token])
    yield reliable
    reliable.stack.sim.clear_faults()
    if reliable.stack.worker is not None:
        reliable.stack.worker.stop()


def pool_child(worker: Service) -> int:
    found = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False
    )
    pids = [int(pid) for pid in found.stdout.split()]
    assert len(pids) == 1, pids
    return pids[0]


def slow_download(rel: Reliable, media_id: str, seconds: float = 30, times: int = 1) -> None:
    rel.stack.sim.add_fault(op="download", media_id=media_id, latency=seconds, times=times)


@POOLS
def test_killed_worker_is_replaced_by_the_sweep(rel: Reliable, pool: WorkerPool) -> None:
    worker = rel.worker("killed", pool)
    item = rel.stack.media("video", size=500_000)
    slow_download(rel, item.record.id)
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_state(item.record.id, "archiving")
    worker.kill()
    killed_at = time.monotonic()
    rel.worker("after-kill", pool)
    rel.stack.wait_archived(item, timeout=120)
    elapsed = time.monotonic() - killed_at
    print(f"\narchived again {elapsed:.1f} s after its worker was killed (lease {LEASE} s)")
    assert rel.stack.verified(item)
    assert int(rel.stack.state(item.record.id)["crashes"]) == 1


def test_killed_pool_child_requeues_its_task(rel: Reliable) -> None:
    # Prefork only: a threads worker is one process, whose kill is the test above.
    worker = rel.worker("child", PREFORK)
    item = rel.stack.media("image")
    slow_download(rel, item.record.id)
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_state(item.record.id, "archiving")
    child = pool_child(worker)
    subprocess.run(["kill", "-9", str(child)], check=True)
    rel.stack.wait_archived(item, timeout=90)
    assert rel.stack.verified(item)


@POOLS
def test_media_that_keeps_killing_its_worker_is_poison(rel: Reliable, pool: WorkerPool) -> None:
    worker = rel.worker("poison", pool)
    item = rel.stack.media("document", filename="bomb.pdf")
    slow_download(rel, item.record.id, times=-1)
    assert rel.stack.post(item).status_code == 200
    for attempt in (1, 2, 3):
        wait_for(
            lambda n=attempt: (
                rel.stack.state(item.record.id).get("state") == "archiving"
                and int(rel.stack.state(item.record.id).get("attempts", 0)) == n
            ),
            timeout=60,
            what=f"attempt {attempt}",
        )
        if pool.name == "prefork":
            # The worker forks another pool process, and the task is put back at once.
            subprocess.run(["kill", "-9", str(pool_child(worker))], check=True)
        else:
            # The worker is the process running the try; the sweep hands the media to the next
            # one once the lease has expired.
            worker.kill()
            worker = rel.worker(f"poison-{attempt}", pool)
    record = rel.stack.wait_state(item.record.id, "failed", timeout=60)
    assert "died 3 times" in record["last_error"]
    member = f"{webhooks.DEFAULT_PHONE_NUMBER_ID}:{item.record.id}"
    assert rel.stack.redis.zscore("wa:failed", member) is not None


@POOLS
def test_sigterm_to_the_main_process_finishes_the_task(rel: Reliable, pool: WorkerPool) -> None:
    worker = rel.worker("warm", pool)
    item = rel.stack.media("image")
    slow_download(rel, item.record.id, seconds=3)
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_state(item.record.id, "archiving")
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=60)
    assert rel.stack.state(item.record.id)["state"] == "archived"
    assert rel.stack.sim.stats()["downloads"][item.record.id] == 1


@POOLS
def test_sigterm_to_the_process_group(rel: Reliable, pool: WorkerPool) -> None:
    """SIGTERM to every process of the group, as systemd stops a service. Prefork's pool
    processes die at once and their task is put back, its upload uncommitted; a threads worker
    is one process, for which this is the warm shutdown of the test above."""
    warm = pool.name != "prefork"
    worker = rel.worker("group", pool)
    item = rel.stack.media("image")
    slow_download(rel, item.record.id, seconds=3 if warm else 30)
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_state(item.record.id, "archiving")
    worker.signal_group(signal.SIGTERM)
    assert worker.process is not None
    worker.process.wait(timeout=60)
    if warm:
        assert rel.stack.state(item.record.id)["state"] == "archived"
        assert rel.stack.sim.stats()["downloads"][item.record.id] == 1
        return
    assert not rel.stack.object_exists(item.key)
    rel.worker("after-term", pool)
    rel.stack.wait_archived(item, timeout=90)
    assert rel.stack.verified(item)


def test_media_lost_from_the_queue_is_swept_back(rel: Reliable) -> None:
    rel.worker("sweep")
    item = rel.stack.media("sticker")
    from wa_media.core.jobs import MediaJob

    job = MediaJob(
        phone_number_id="106540352242922",
        waba_id=None,
        wamid=item.message["id"],
        sender=item.message["from"],
        timestamp=int(item.message["timestamp"]),
        type="sticker",
        media_id=item.record.id,
        mime_type="image/webp",
        sha256=item.record.sha256,
        animated=False,
    )
    # Recorded as queued, but the task itself was lost (say, with a Redis that kept nothing).
    assert MediaStateStore(Redis.from_url(rel.redis.url), stall_after=5).admit(job)
    rel.stack.wait_archived(item, timeout=60)


def test_revoked_token_pauses_instead_of_failing(rel: Reliable) -> None:
    rel.worker("token")
    items = [rel.stack.media("image") for _ in range(3)]
    rel.stack.sim.set_tokens(["a-new-token-nobody-has"])
    assert rel.stack.post(*items).status_code == 200
    wait_for(lambda: rel.stack.redis.keys("wa:pause:*"), timeout=30, what="pause")
    wait_for(
        lambda: all("token" in rel.stack.state(i.record.id).get("last_error", "") for i in items),
        timeout=30,
        what="every media waiting on the token",
    )
    assert all(rel.stack.state(i.record.id)["state"] != "failed" for i in items)
    rel.stack.sim.set_tokens([rel.env.access_token])
    for item in items:
        rel.stack.wait_archived(item, timeout=60)


def test_failed_media_are_listed_and_replayed(rel: Reliable) -> None:
    rel.worker("cli")
    item = rel.stack.media("image")
    rel.stack.sim.add_fault(
        op="lookup", media_id=item.record.id, status=400, error={"code": 100}, times=-1
    )
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_state(item.record.id, "failed")
    runner = CliRunner()
    listed = runner.invoke(cli, ["failed"], env={"REDIS_URL": rel.redis.url})
    assert listed.exit_code == 0, listed.output
    assert item.record.id in listed.output
    assert "code 100" in listed.output
    failed_count = int(listed.output.strip().splitlines()[-1].split()[0])

    rel.stack.sim.clear_faults()
    replayed = runner.invoke(cli, ["replay", "--all"], env={"REDIS_URL": rel.redis.url})
    assert replayed.exit_code == 0, replayed.output
    assert f"{failed_count} queued again" in replayed.output
    rel.stack.wait_archived(item)
    # Every failure of this module's earlier tests had a cause that is gone now.
    wait_for(
        lambda: (
            "no failed media"
            in runner.invoke(cli, ["failed"], env={"REDIS_URL": rel.redis.url}).output
        ),
        timeout=60,
        what="no failed media left",
    )
    unknown = runner.invoke(cli, ["replay", "no-such-media"], env={"REDIS_URL": rel.redis.url})
    assert unknown.exit_code == 1


def test_calls_to_meta_are_rate_limited_per_token(rel: Reliable) -> None:
    rel.worker("rate")
    # A second worker process shares the same limit through Redis.
    second = start_worker(
        rel.env, rel.logs, name="rate-2", pool=DEPLOYED.name, concurrency=DEPLOYED.concurrency
    )
    try:
        items = [rel.stack.media("sticker", size=1_000) for _ in range(20)]
        started = time.time()
        for batch in (items[:10], items[10:]):
            assert rel.stack.post(*batch).status_code == 200
        for item in items:
            rel.stack.wait_archived(item, timeout=90)
    finally:
        second.stop()
    ids = {item.record.id for item in items}
    calls = [r for r in rel.stack.sim.requests() if r["media_id"] in ids and r["time"] >= started]
    assert len(calls) >= 40
    per_second = Counter(int(r["time"]) for r in calls)
    span = max(r["time"] for r in calls) - min(r["time"] for r in calls)
    # Windows are the workers' seconds; a call admitted at a window's end may arrive in the next.
    assert max(per_second.values()) <= 2 * RATE
    assert len(calls) <= RATE * (span + 2)


def test_a_dead_workers_unfinished_upload_is_aborted(rel: Reliable) -> None:
    rel.worker("leftover")
    item = rel.stack.media("video", size=9_000_000)
    # What a worker killed mid-upload leaves: a record saying "archiving", no lease, and an
    # unfinished multipart upload of the key.
    rel.stack.redis.hset(
        f"wa:media:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{item.record.id}",
        mapping={"state": "archiving", "attempts": "1"},
    )
    rel.stack.s3.create_multipart_upload(Bucket=BUCKET, Key=item.key)
    assert rel.stack.post(item).status_code == 200
    rel.stack.wait_archived(item)
    assert rel.stack.verified(item)
    uploads = rel.stack.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=item.key)
    assert uploads.get("Uploads", []) == []
    assert rel.stack.state(item.record.id)["crashes"] == "1"
