"""Fixtures every test may use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from redis import Redis

# Another server may stand in, so that two test sessions on one machine keep apart.
SHARED_REDIS = os.environ.get("TEST_REDIS", "redis://127.0.0.1:6379")


def redis_db(db: int) -> Iterator[str]:
    """A flushed database of the shared Redis; each test module has a number of its own."""
    url = f"{SHARED_REDIS}/{db}"
    client = Redis.from_url(url)
    try:
        client.ping()
    except OSError as exc:  # pragma: no cover - a broken machine, not a test outcome
        pytest.fail(f"the shared Redis at {SHARED_REDIS} does not answer: run `make redis` ({exc})")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
