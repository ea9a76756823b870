"""The chaos run's verdict (bench/chaos.py) on outcomes made up here: however well the archive
came through, a run fails unless every blow it planned landed."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

from bench.chaos import (
    PROCESS_KILLS,
    Action,
    DeliveryStats,
    Evidence,
    KillRecord,
    Outcome,
    Verification,
    build_plan,
    parse_args,
)
from devstack.stack import WorkerPool, deployed_pool

PLAN = build_plan(parse_args(["--small"])[0])


def landed(action: Action, n: int) -> KillRecord:
    if action in PROCESS_KILLS:
        media = f"m{n}"
        return KillRecord(action, 0.0, f"w{n}", held=(media,), slow=(media,), cut=(media,))
    return KillRecord(action, 0.0, action)


def outcome(**changes: Any) -> Outcome:
    """A run of the small plan in which everything went right and every blow landed."""
    struck = [event.action for event in PLAN.events if event.action != "s3_up"]
    media = len(PLAN.media)
    passed = Outcome(
        plan=PLAN,
        stats=DeliveryStats(delivered=len(PLAN.deliveries)),
        faults_triggered=Counter(PLAN.faults()),
        kills=[landed(action, n) for n, action in enumerate(struck)],
        verification=Verification(archived=media, objects=media, replies=len(PLAN.too_big)),
        settled=True,
        recovery=None,
        phases={},
        unexpected_exits=[],
        evidence=Evidence(broker_losses=2, s3_retries=10),
    )
    return dataclasses.replace(passed, **changes)


def failed(run: Outcome) -> set[str]:
    return {name for name, ok, _ in run.checks() if not ok}


def test_a_run_whose_blows_all_landed_passes() -> None:
    assert outcome().failed_checks() == []


def test_a_run_that_interrupted_nothing_fails() -> None:
    idle = [
        dataclasses.replace(k, held=(), slow=(), cut=()) if k.action in PROCESS_KILLS else k
        for k in outcome().kills
    ]
    assert failed(outcome(kills=idle)) == {"every worker kill cut a try short"}


def test_a_kill_whose_tries_were_not_cut_short_fails() -> None:
    # Tries were seen in flight, but none of their media counted a crash afterwards.
    uncut = [dataclasses.replace(k, cut=()) for k in outcome().kills]
    assert failed(outcome(kills=uncut)) == {"every worker kill cut a try short"}


def test_a_run_without_any_worker_kill_fails() -> None:
    others = [k for k in outcome().kills if k.action not in PROCESS_KILLS]
    assert "every worker kill cut a try short" in failed(outcome(kills=others))


def test_faults_that_never_fired_fail_the_run() -> None:
    assert failed(outcome(faults_triggered=Counter())) == {"every planned fault fired"}


def test_unnoticed_redis_kill_and_harmless_s3_outage_fail_the_run() -> None:
    assert failed(outcome(evidence=Evidence())) == {
        "every Redis kill noticed by the workers",
        "the S3 outage failed uploads",
    }


def test_an_error_while_looking_for_victims_fails_the_run() -> None:
    errors = ["reading the leases: ConnectionError: refused"]
    assert failed(outcome(lookout_errors=errors)) == {"every victim seen"}


@pytest.mark.parametrize(
    ("sent_twice", "to_come", "replies_at_kills", "cut_by_redis", "passes"),
    [
        (2, 0, 0, 0, True),  # one per worker kill: the small plan has two
        (2, 1, 0, 0, False),  # a claim left `sending` counts: it will be sent again
        (3, 0, 0, 0, False),  # the Redis kill and the S3 outage allow none
        (3, 0, 0, 1, True),  # unless Redis failed a record after the send, as the worker logged
        (4, 0, 3, 0, True),  # a kill may cut every warning being sent at that moment
    ],
)
def test_duplicate_warnings_are_bounded_by_what_worker_kills_could_cause(
    sent_twice: int, to_come: int, replies_at_kills: int, cut_by_redis: int, passes: bool
) -> None:
    kills = outcome().kills
    first = next(n for n, k in enumerate(kills) if k.action in PROCESS_KILLS)
    kills[first] = dataclasses.replace(kills[first], replies=replies_at_kills)
    verification = dataclasses.replace(
        outcome().verification, duplicate_replies=sent_twice, unsettled_replies=to_come
    )
    run = outcome(
        kills=kills,
        verification=verification,
        evidence=Evidence(broker_losses=2, s3_retries=10, replies_cut_by_redis=cut_by_redis),
    )
    check = "duplicate warnings <= what worker kills could cause"
    assert (check not in failed(run)) is passes


def test_without_persistence_a_redis_kill_may_repeat_every_warning() -> None:
    no_aof = build_plan(parse_args(["--small", "--no-aof"])[0])
    process_kills = sum(1 for k in outcome().kills if k.action in PROCESS_KILLS)
    allowed = process_kills + len(no_aof.too_big)
    check = "duplicate warnings <= what worker kills could cause"
    for duplicates, passes in ((allowed, True), (allowed + 1, False)):
        verification = dataclasses.replace(outcome().verification, duplicate_replies=duplicates)
        run = outcome(plan=no_aof, verification=verification)
        assert (check not in failed(run)) is passes


def test_the_run_uses_the_procfiles_worker_unless_told_otherwise() -> None:
    params, _, _ = parse_args([])
    assert params.worker_pool == deployed_pool()
    params, _, _ = parse_args(["--small", "--pool", "prefork"])
    assert params.worker_pool == WorkerPool("prefork", 2)
    params, _, _ = parse_args(["--pool", "prefork", "--concurrency", "3"])
    assert params.worker_pool == WorkerPool("prefork", 3)
