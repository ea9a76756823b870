"""Vendors' errors become the product's at their adapter: Redis's in redis_client.py, the
broker's in broker.py, S3's in s3.py. A Redis, broker or S3 that is down is a closed port of
127.0.0.1; the Redis that is up is the shared one (these tests write no key in it)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from celery import Celery

from tests.conftest import SHARED_REDIS
from wa_media.core.errors import BrokerUnavailable, RedisUnavailable, StorageError
from wa_media.core.jobs import MediaJob
from wa_media.core.reasons import reason_of
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE, apply_async, make_celery, send_task
from wa_media.stores.gate import MetaGate
from wa_media.stores.records import MediaRef, MediaStateStore
from wa_media.stores.redis_client import TranslatedRedis, connect, failure_name
from wa_media.stores.s3 import list_keys, make_s3_client, object_chunks, read_object
from wa_media.stores.snapshot import archived_counts, read_snapshot


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live() -> Iterator[TranslatedRedis]:
    client = connect(f"{SHARED_REDIS}/0", socket_connect_timeout=2, socket_timeout=5)
    assert isinstance(client, TranslatedRedis)
    yield client
    client.close()


@pytest.fixture
def dead() -> Iterator[TranslatedRedis]:
    client = connect(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=1)
    assert isinstance(client, TranslatedRedis)
    yield client
    client.close()


# Redis up: the client is redis-py's, its signals (NoScriptError) still at work.


def test_a_live_client_answers_as_redis_py(live: TranslatedRedis) -> None:
    assert live.ping() is True
    assert live.echo("hello") == b"hello"
    with live.pipeline(transaction=False) as pipe:
        pipe.echo("a")
        pipe.ping()
        assert pipe.execute() == [b"a", True]


def test_a_script_the_server_lost_is_loaded_again(live: TranslatedRedis) -> None:
    script = live.register_script("return ARGV[1]")
    assert script(keys=[], args=["one"]) == b"one"
    script.sha = "0" * 40  # a script Redis does not know: NoScriptError, then a load
    assert script(keys=[], args=["two"]) == b"two"
    with live.pipeline() as pipe:
        script(keys=[], args=["three"], client=pipe)
        assert pipe.execute() == [b"three"]


def test_a_refused_command_is_redis_unavailable(live: TranslatedRedis) -> None:
    with pytest.raises(RedisUnavailable, match="NO-SUCH-COMMAND failed: ResponseError"):
        live.execute_command("NO-SUCH-COMMAND")


# Redis down: commands, pipelines and scripts raise RedisUnavailable, which names the command
# and redis-py's failure, never the command's arguments.


def test_a_command_to_a_dead_redis_is_redis_unavailable(dead: TranslatedRedis) -> None:
    with pytest.raises(RedisUnavailable) as raised:
        dead.get("wa:media:secret-id")
    assert str(raised.value) == "Redis GET failed: ConnectionError"
    assert "secret-id" not in str(raised.value)
    assert failure_name(raised.value) == "ConnectionError"
    assert reason_of(raised.value) == "redis_unavailable"


def test_a_pipeline_to_a_dead_redis_is_redis_unavailable(dead: TranslatedRedis) -> None:
    with dead.pipeline() as pipe:
        pipe.incr("wa:rate:x")
        pipe.expire("wa:rate:x", 2)
        with pytest.raises(RedisUnavailable, match="pipeline failed"):
            pipe.execute()


def test_a_script_on_a_dead_redis_is_redis_unavailable(dead: TranslatedRedis) -> None:
    with pytest.raises(RedisUnavailable, match="EVALSHA failed"):
        dead.register_script("return 1")(keys=[], args=[])


def test_the_stores_over_a_dead_redis(dead: TranslatedRedis) -> None:
    job = MediaJob(
        phone_number_id="pn1", waba_id=None, wamid="wamid.1", sender="15550001", timestamp=0,
        type="image", media_id="m1", mime_type="image/jpeg", sha256=None,
    )  # fmt: skip
    with pytest.raises(RedisUnavailable, match=r"^Redis read failed: ConnectionError$"):
        MediaStateStore(dead).get(MediaRef.of(job))
    with pytest.raises(RedisUnavailable):
        MediaStateStore(dead).take_sweep_lock(10)
    with pytest.raises(RedisUnavailable):
        read_snapshot(dead)
    with pytest.raises(RedisUnavailable):
        archived_counts(dead)
    # Without Redis, the call gate lets calls through: Meta's own answer is the guard.
    gate = MetaGate(dead, token="t", per_second=1)
    gate.check_paused()
    gate.admit()
    gate.rejected()


def test_failure_name_of_an_untranslated_error() -> None:
    assert failure_name(RedisUnavailable("gone")) == "RedisUnavailable"


# The broker down: a publish is BrokerUnavailable.


@pytest.fixture
def dead_broker() -> Iterator[Celery]:
    app = make_celery(f"redis://127.0.0.1:{closed_port()}/0")
    yield app
    app.close()


def test_a_publish_to_a_dead_broker_is_broker_unavailable(dead_broker: Celery) -> None:
    with pytest.raises(BrokerUnavailable) as raised:
        send_task(dead_broker, FAN_OUT_TASK, args=[{"media": [], "replies": []}], queue=MEDIA_QUEUE)
    assert str(raised.value).startswith("publish failed: ")
    assert reason_of(raised.value) == "broker_unavailable"


def test_a_task_call_to_a_dead_broker_is_broker_unavailable(dead_broker: Celery) -> None:
    @dead_broker.task(name="wa.test_translation")
    def noop() -> None:
        """Never runs: its publish fails."""

    with pytest.raises(BrokerUnavailable):
        apply_async(noop, args=(), queue=MEDIA_QUEUE)


# S3 down: StorageError from the S3 adapter, for the audit's reads too.


def test_s3_reads_of_a_dead_endpoint_are_storage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = make_s3_client(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(StorageError, match=r"^S3 listing failed: EndpointConnectionError$"):
        list(list_keys(client, "bucket", ""))
    with pytest.raises(StorageError, match=r"^S3 read failed: EndpointConnectionError$"):
        read_object(client, "bucket", "key.json")
    with pytest.raises(StorageError) as raised:
        object_chunks(client, "bucket", "key", 1024)
    assert reason_of(raised.value) == "s3_unavailable"
