"""`python -m devstack.demo`: help without side effects, and writes only to what it created."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from devstack.redis_server import RedisServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def demo(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack.demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def someone_elses_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis holding another user's data, in database 0 and in 14 (the demo's, once)."""
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    for db in (0, 14):
        with Redis.from_url(f"redis://127.0.0.1:{server.port}/{db}") as client:
            client.set("theirs", f"data of db {db}")
            client.rpush("media", "a task of theirs")
    yield server
    server.stop()


def keys_by_db(server: RedisServer) -> dict[int, dict[str, str]]:
    found = {}
    for db in range(16):
        with Redis.from_url(f"redis://127.0.0.1:{server.port}/{db}", decode_responses=True) as r:
            if r.dbsize():
                found[db] = {key: r.type(key) for key in r.scan_iter()}
    return found


def test_help_prints_help_and_starts_nothing(someone_elses_redis: RedisServer) -> None:
    env = {**os.environ, "REDIS_URL": someone_elses_redis.url}
    before = keys_by_db(someone_elses_redis)
    done = demo("--help", env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m devstack.demo")
    assert "--redis-url URL" in done.stdout
    assert "Redis:" not in done.stdout
    assert keys_by_db(someone_elses_redis) == before


def test_a_database_holding_keys_is_refused_untouched(someone_elses_redis: RedisServer) -> None:
    before = keys_by_db(someone_elses_redis)
    url = f"redis://127.0.0.1:{someone_elses_redis.port}/14"
    done = demo("--redis-url", url, env=dict(os.environ), timeout=60)
    assert done.returncode == 1
    assert f"the database {url} holds 2 keys" in done.stderr
    assert keys_by_db(someone_elses_redis) == before


def test_the_demo_runs_on_a_private_redis_and_leaves_redis_url_alone(
    someone_elses_redis: RedisServer,
) -> None:
    """The whole demo passes while REDIS_URL names someone's server: not one key there moves."""
    before = keys_by_db(someone_elses_redis)
    env = {**os.environ, "REDIS_URL": someone_elses_redis.url}
    done = demo(env=env, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Redis: starting a private redis-server" in done.stdout
    assert "All checks passed" in done.stdout
    assert "every webhook relayed as received" in done.stdout
    assert "Relayed to `crm`: " in done.stdout
    assert "media.archived, each verified" in done.stdout
    assert keys_by_db(someone_elses_redis) == before
