"""The commit of an archived object: one writer of a key at a time (a claim in a real Redis), and
what a taken key means (the same bytes, or a conflict), over the unit fake S3; and the sweep's
lock, held and taken over by the same rule."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from structlog.testing import capture_logs

from tests.conftest import redis_db
from tests.unit.stores.test_storage_upload import FakeS3
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import BusyError, KeyConflict, RedisUnavailable
from wa_media.core.reasons import reason_of
from wa_media.stores.commit import CommitClaims, commit_upload
from wa_media.stores.records import SWEEP_LOCK_KEY, MediaStateStore
from wa_media.stores.redis_client import connect
from wa_media.stores.s3 import PART_SIZE, ArchiveStore

BUCKET = "b"


@pytest.fixture
def redis() -> Iterator[Redis]:
    for url in redis_db(1):
        client = Redis.from_url(url)
        yield client
        client.close()


def _commit(s3: FakeS3, claims: CommitClaims, data: bytes) -> bool:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET))  # type: ignore[arg-type]
    digest = hashlib.sha256(data).hexdigest()
    with store.upload("k", content_type="image/jpeg", metadata={"sha256": digest}) as upload:
        upload.write(data)
        return commit_upload(upload, store, claims, digest, len(data))


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_a_free_key_is_committed(redis: Redis, size: int) -> None:
    s3 = FakeS3()
    data = bytes(size)
    assert _commit(s3, CommitClaims(redis), data) is True
    assert s3.objects["k"] == data
    # The claim is let go once the commit is done.
    assert redis.keys("wa:commit:*") == []


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_the_same_bytes_already_there_are_a_duplicate(redis: Redis, size: int) -> None:
    s3 = FakeS3()
    data = b"\1" * size
    s3.objects["k"] = data
    s3.metadata["k"] = {"sha256": hashlib.sha256(data).hexdigest(), "writer": "earlier"}
    assert _commit(s3, CommitClaims(redis), data) is False
    assert s3.metadata["k"]["writer"] == "earlier"


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_other_bytes_already_there_are_a_loud_conflict(redis: Redis, size: int) -> None:
    s3 = FakeS3()
    theirs = b"\2" * size
    theirs_hex = hashlib.sha256(theirs).hexdigest()
    s3.objects["k"], s3.metadata["k"] = theirs, {"sha256": theirs_hex}
    ours = b"\3" * size
    with capture_logs() as logs, pytest.raises(KeyConflict) as conflict:
        _commit(s3, CommitClaims(redis), ours)
    assert reason_of(conflict.value) == "key_conflict"
    assert theirs_hex in conflict.value.reason
    assert s3.objects["k"] == theirs
    [line] = [entry for entry in logs if entry["event"] == "key_conflict"]
    assert line["log_level"] == "error"
    assert (line["bucket"], line["key"]) == (BUCKET, "k")
    assert line["sha256"] == hashlib.sha256(ours).hexdigest()
    assert (line["existing_sha256"], line["existing_size"]) == (theirs_hex, size)


def test_the_same_digest_with_another_size_is_a_conflict(redis: Redis) -> None:
    s3 = FakeS3()
    data = b"\4" * 100
    s3.objects["k"] = data + b"tail"
    s3.metadata["k"] = {"sha256": hashlib.sha256(data).hexdigest()}
    with pytest.raises(KeyConflict):
        _commit(s3, CommitClaims(redis), data)


def test_a_completion_another_writer_overtook_is_settled_as_a_taken_key(redis: Redis) -> None:
    s3 = FakeS3()
    s3.landing_after_completion = b"another writer's bytes"
    with pytest.raises(KeyConflict):
        _commit(s3, CommitClaims(redis), b"\5" * (PART_SIZE + 1))
    assert s3.objects["k"] == b"another writer's bytes"


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_the_commit_is_sent_while_the_key_is_claimed(redis: Redis, size: int) -> None:
    claimed: list[bool] = []

    class Watching(FakeS3):
        def put_object(self, **kwargs: Any) -> dict[str, Any]:
            claimed.append(bool(redis.exists(f"wa:commit:{BUCKET}/k")))
            return super().put_object(**kwargs)

        def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
            claimed.append(bool(redis.exists(f"wa:commit:{BUCKET}/k")))
            return super().complete_multipart_upload(**kwargs)

    assert _commit(Watching(), CommitClaims(redis), bytes(size)) is True
    assert claimed == [True]
    assert not redis.exists(f"wa:commit:{BUCKET}/k")


def test_a_second_writer_waits_for_the_first_to_let_go(redis: Redis) -> None:
    claims = CommitClaims(redis, wait=10)
    holding, letting_go, entered = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with claims.hold(BUCKET, "k"):
            order.append("first in")
            holding.set()
            letting_go.wait(10)
            order.append("first out")

    def second() -> None:
        holding.wait(10)
        with claims.hold(BUCKET, "k"):
            order.append("second in")
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert holding.wait(10)
    assert not entered.wait(0.3)
    letting_go.set()
    assert entered.wait(10)
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]


def test_a_claim_held_too_long_makes_the_writer_retry_later(redis: Redis) -> None:
    with CommitClaims(redis).hold(BUCKET, "k"):
        started = time.monotonic()
        with pytest.raises(BusyError) as busy, CommitClaims(redis, wait=0.2).hold(BUCKET, "k"):
            pass
    assert time.monotonic() - started >= 0.2
    assert reason_of(busy.value) == "busy"
    assert busy.value.retry_after


def test_a_claim_whose_holder_died_expires(redis: Redis) -> None:
    name = f"wa:commit:{BUCKET}/k"
    redis.set(name, "a holder that died", ex=1)
    with CommitClaims(redis, wait=10).hold(BUCKET, "k"):
        assert redis.get(name) != b"a holder that died"
        assert 0 < redis.ttl(name) <= CommitClaims.ttl


def test_a_claim_of_a_dead_process_of_this_host_is_taken_at_once(redis: Redis) -> None:
    """A worker killed while committing leaves its claim; the next writer need not wait for it
    to expire (a chaos run's killed worker held one for 300 s)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    name = f"wa:commit:{BUCKET}/k"
    redis.set(name, f"{socket.gethostname()}:{gone.pid}:dead", ex=300)
    started = time.monotonic()
    with CommitClaims(redis, wait=5).hold(BUCKET, "k"):
        assert redis.get(name) != f"{socket.gethostname()}:{gone.pid}:dead".encode()
    assert time.monotonic() - started < 1


def test_a_claim_of_a_live_process_is_waited_for(redis: Redis) -> None:
    name = f"wa:commit:{BUCKET}/k"
    redis.set(name, f"{socket.gethostname()}:{os.getpid()}:alive", ex=300)
    with pytest.raises(BusyError), CommitClaims(redis, wait=0.2).hold(BUCKET, "k"):
        pass


def test_a_holder_whose_claim_ran_out_leaves_the_next_one_alone(redis: Redis) -> None:
    name = f"wa:commit:{BUCKET}/k"
    with CommitClaims(redis, ttl=1).hold(BUCKET, "k"):
        redis.set(name, "the next holder", ex=60)
    assert redis.get(name) == b"the next holder"


def test_redis_away_is_a_retryable_failure() -> None:
    unreachable = connect("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(RedisUnavailable), CommitClaims(unreachable).hold(BUCKET, "k"):
        pass


# The sweep's lock follows the same rule as claims.


def test_the_sweep_lock_is_taken_once_and_let_go_by_its_holder_only(redis: Redis) -> None:
    store = MediaStateStore(redis)
    redis.delete(SWEEP_LOCK_KEY)
    token = store.take_sweep_lock(60)
    assert token is not None
    assert store.take_sweep_lock(60) is None  # a sweep runs: another one skips
    assert 0 < redis.ttl(SWEEP_LOCK_KEY) <= 60
    # A sweep whose lock ran out and was taken by another does not free the new holder's.
    redis.set(SWEEP_LOCK_KEY, "the next holder", ex=60)
    store.release_sweep_lock(token)
    assert redis.get(SWEEP_LOCK_KEY) == b"the next holder"
    redis.delete(SWEEP_LOCK_KEY)


def test_a_sweep_lock_of_a_dead_process_of_this_host_is_taken_at_once(redis: Redis) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    redis.set(SWEEP_LOCK_KEY, f"{socket.gethostname()}:{gone.pid}:dead", ex=60)
    store = MediaStateStore(redis)
    token = store.take_sweep_lock(60)
    assert token is not None
    assert redis.get(SWEEP_LOCK_KEY) == token.encode()
    store.release_sweep_lock(token)
    assert redis.get(SWEEP_LOCK_KEY) is None
