"""A try's deadline bounds its transfer, not only each read: against the simulator's trickle
fault (a few bytes every so often, forever within the read timeout). The lease that stops being
renewed past it is tested with the record store (tests/unit/stores/test_records.py)."""

from __future__ import annotations

import os
import time

import pytest

from devstack.processes import wait_for
from graphsim import SimulatorClient
from tests.sim_providers import PHONE, add_media, provider_fixture
from wa_media.config.settings import MAX_TRY_SECONDS
from wa_media.core.errors import ConfigError, TimedOut
from wa_media.core.provider import Provider, ProviderKind
from wa_media.core.reasons import reason_of
from wa_media.providers.accounts import worker_settings
from wa_media.providers.transfer import TIMEOUT, Deadline, under_deadline
from wa_media.stores.broker import TASK_TIME_LIMIT

cloud = provider_fixture("cloud")
d360 = provider_fixture("360dialog")
onprem = provider_fixture("onprem")

DEADLINE = 1.5
# A try ends when its deadline passes, give or take the scheduling of two threads.
MARGIN = 1.0


def read_all(provider: Provider, media_id: str, url: str | None = None) -> bytes:
    with provider.fetch(media_id, PHONE, url) as fetched:
        return b"".join(fetched.chunks)


@pytest.mark.parametrize("kind", ["cloud", "360dialog", "onprem"])
def test_a_trickling_download_ends_at_the_deadline(
    kind: ProviderKind,
    request: pytest.FixtureRequest,
    client: SimulatorClient,
) -> None:
    provider: Provider = request.getfixturevalue({"360dialog": "d360"}.get(kind, kind))
    media_id = add_media(client, kind, os.urandom(2000), "image/jpeg")
    # A byte every half second: each read waits far less than the 30 s read timeout, and the
    # whole body would take 1,000 s.
    client.add_fault(op="download", media_id=media_id, trickle_bytes=1, trickle_seconds=0.5)
    assert TIMEOUT[1] > 0.5

    started = time.monotonic()
    expected = r"MEDIA_TRY_SECONDS=1\.5 s.*connection was closed"
    with pytest.raises(TimedOut, match=expected) as err, under_deadline(Deadline(DEADLINE)):
        read_all(provider, media_id)
    took = time.monotonic() - started

    assert DEADLINE <= took < DEADLINE + MARGIN, took
    assert reason_of(err.value) == "timeout"


def test_a_webhook_url_that_trickles_ends_at_the_deadline_without_a_lookup(
    cloud: Provider, client: SimulatorClient
) -> None:
    media_id = add_media(client, "cloud", os.urandom(2000), "image/jpeg")
    client.add_fault(op="download", media_id=media_id, trickle_bytes=1, trickle_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(TimedOut), under_deadline(Deadline(DEADLINE)):
        read_all(cloud, media_id, client.download_url(media_id))

    assert time.monotonic() - started < DEADLINE + MARGIN
    assert [entry["op"] for entry in client.requests()] == ["download"]


def test_a_try_past_its_deadline_sends_nothing(cloud: Provider, client: SimulatorClient) -> None:
    media_id = add_media(client, "cloud", b"x", "image/jpeg")
    passed = Deadline(0)

    with pytest.raises(TimedOut), under_deadline(passed):
        read_all(cloud, media_id)

    assert client.requests() == []


def test_a_transfer_within_its_deadline_leaves_its_connection_to_the_next_one(
    cloud: Provider, client: SimulatorClient
) -> None:
    data = os.urandom(5000)
    media_id = add_media(client, "cloud", data, "image/jpeg")
    deadline = Deadline(0.3)
    with under_deadline(deadline):
        assert read_all(cloud, media_id) == data

    wait_for(lambda: deadline.remaining() == 0, timeout=5, what="the deadline to pass")
    # Its watchdog was disarmed: the pooled connection still serves the next media.
    assert read_all(cloud, media_id) == data
    assert not deadline.cut
    connections = {entry["connection"] for entry in client.requests()}
    assert len(connections) == 1


WORKER_ENV = {"WHATSAPP_ACCESS_TOKEN": "tok-123", "S3_BUCKET": "archive"}


def test_the_default_deadline_is_the_prefork_soft_time_limit() -> None:
    assert MAX_TRY_SECONDS == TASK_TIME_LIMIT - 60
    assert worker_settings(WORKER_ENV).try_seconds == MAX_TRY_SECONDS


@pytest.mark.parametrize("value", ["1", "3", "840"])
def test_media_try_seconds(value: str) -> None:
    settings = worker_settings({**WORKER_ENV, "MEDIA_TRY_SECONDS": value})
    assert settings.try_seconds == int(value)


@pytest.mark.parametrize("value", ["0", "-5", "841", "3.5", "soon"])
def test_media_try_seconds_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="MEDIA_TRY_SECONDS"):
        worker_settings({**WORKER_ENV, "MEDIA_TRY_SECONDS": value})
