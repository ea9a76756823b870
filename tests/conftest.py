"""Fixtures every test may use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from redis import Redis

from graphsim import Simulator, SimulatorClient

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


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The Graph API simulator, one server per test module."""
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator) -> Iterator[SimulatorClient]:
    """The simulator's control client, the simulator reset for each test."""
    with sim.client() as control:
        control.reset()
        yield control


@pytest.fixture(autouse=True, scope="session")
def _loggers_never_cached() -> Iterator[None]:
    """The processes cache each logger on first use (wa_media/observability/logs.py); in one
    test session, a test that builds `web` or runs `wa-media` would then leave the module-level
    loggers it used deaf to every later test's `capture_logs`."""
    configure = structlog.configure

    def uncached(**settings: object) -> None:
        configure(**{**settings, "cache_logger_on_first_use": False})  # type: ignore[arg-type]

    structlog.configure = uncached  # type: ignore[assignment]
    yield
    structlog.configure = configure  # type: ignore[assignment]
