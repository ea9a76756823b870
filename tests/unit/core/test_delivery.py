"""Delivery's pure decisions: what follows an attempt, Retry-After, the backoff, the pause."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from wa_media.core.delivery import (
    DeliveryPolicy,
    DeliveryRecord,
    Relay,
    delivery_id,
    failure_of_status,
    relay_id,
    retry_after_seconds,
    rfc3339,
)

POLICY = DeliveryPolicy(max_age=3600, pause_after=3, pause_seconds=60, max_countdown=1800)
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (200, None),
        (204, None),
        (299, None),
        (301, "redirect"),
        (302, "redirect"),
        (307, "redirect"),
        (400, "http_4xx"),
        (401, "http_4xx"),
        (429, "http_429"),
        (500, "http_5xx"),
        (503, "http_5xx"),
        (100, "http_5xx"),
    ],
)
def test_only_a_2xx_is_taken(status: int, reason: str | None) -> None:
    assert failure_of_status(status) == reason


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("soon", None),
        ("-5", None),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_backoff_is_full_jitter_growing_exponentially_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (5, 32), (11, 1800), (40, 1800)]:
        draws = [POLICY.backoff(attempts, rng) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in draws)
        # Full jitter: draws spread over the whole range, from near 0 to near the ceiling.
        assert min(draws) < ceiling * 0.05
        assert max(draws) > ceiling * 0.95


def test_retry_after_is_a_floor_and_the_countdown_is_capped() -> None:
    rng = random.Random(1)
    step = POLICY.after_failure(
        attempts=1, created_at=NOW, now=NOW, failures_in_row=1, retry_after=30, rng=rng
    )
    assert (step.action, step.countdown, step.pause) == ("retry", 30, False)
    step = POLICY.after_failure(
        attempts=1, created_at=NOW, now=NOW, failures_in_row=1, retry_after=99_999, rng=rng
    )
    assert step.countdown == 1800


def test_the_last_retry_is_due_at_the_maximum_age_and_then_it_is_dead() -> None:
    step = POLICY.after_failure(
        attempts=1, created_at=NOW, now=NOW + 3590, failures_in_row=1, retry_after=300
    )
    assert step.action == "retry"
    assert step.countdown == pytest.approx(10)
    step = POLICY.after_failure(attempts=9, created_at=NOW, now=NOW + 3600, failures_in_row=1)
    assert step.action == "dead"
    assert POLICY.expired(NOW, NOW + 3600)
    assert not POLICY.expired(NOW, NOW + 3599)


def test_failures_in_a_row_pause_the_destination() -> None:
    steps = [
        POLICY.after_failure(attempts=1, created_at=NOW, now=NOW, failures_in_row=n)
        for n in (1, 2, 3, 4)
    ]
    assert [s.pause for s in steps] == [False, False, True, True]
    # A retry is not due before the pause ends.
    assert steps[2].countdown >= 60


def test_while_paused_a_delivery_waits_for_the_pause_to_end() -> None:
    rng = random.Random(3)
    countdown = POLICY.while_paused(NOW + 40, NOW, rng)
    assert 40 <= countdown <= 41
    assert POLICY.while_paused(NOW + 99_999, NOW, rng) == 1800
    assert 0 <= POLICY.while_paused(NOW - 5, NOW, rng) <= 1


def test_a_delivery_id_is_stable_per_source_and_destination() -> None:
    assert delivery_id("r1", "crm") == delivery_id("r1", "crm")
    assert delivery_id("r1", "crm") != delivery_id("r1", "bot")
    assert delivery_id("r1", "crm") != delivery_id("r2", "crm")
    assert delivery_id("r1", "crm").startswith("dlv_")
    assert len(delivery_id("r1", "crm")) == 36


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.500Z"


def test_a_relay_travels_as_a_batch_member_byte_for_byte() -> None:
    relay = Relay("r1", b'{"x": 1}\n\x00\xff', "application/json", "sha256=ab", ("1", "2"), NOW)
    assert Relay.from_wire(relay.to_wire()) == relay
    unsigned = Relay("r2", b"{}", "application/json", None, (), NOW)
    assert Relay.from_wire(unsigned.to_wire()) == unsigned


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {},
        {"id": "r1", "body": "!!", "received_at": 1},
        {"id": "r1", "body": "e30=", "received_at": "x"},
        {"id": "", "body": "e30=", "received_at": 1},
        {"id": "r1", "body": "e30=", "received_at": 1, "numbers": "123"},
    ],
)
def test_a_member_that_is_not_a_relay_is_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="relay member"):
        Relay.from_wire(raw)


def test_a_record_reads_its_hash() -> None:
    assert DeliveryRecord.from_hash("dlv_1", {}) is None
    record = DeliveryRecord.from_hash(
        "dlv_1",
        {
            "kind": "relay",
            "destination": "crm",
            "state": "dead",
            "source": "r1",
            "received_at": "10.5",
            "attempts": "3",
            "body_ref": "r1",
            "dead_reason": "max_age",
            "dead_at": "20",
        },
    )
    assert record is not None
    assert (record.age_from, record.attempts, record.dead_at) == (10.5, 3, 20.0)
    with pytest.raises(ValueError, match="no release writes"):
        DeliveryRecord.from_hash("dlv_1", {"kind": "fax", "state": "pending"})


def test_a_webhook_delivered_again_keeps_its_relay_id() -> None:
    first = relay_id(b'{"entry": []}', "sha256=ab")
    assert first == relay_id(b'{"entry": []}', "sha256=ab")
    assert len(first) == 32
    assert first != relay_id(b'{"entry": [1]}', "sha256=ab")
    assert first != relay_id(b'{"entry": []}', "sha256=cd")
