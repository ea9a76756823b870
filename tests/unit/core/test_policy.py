import random

from hypothesis import given, settings
from hypothesis import strategies as st

from wa_media.core.errors import (
    BusyError,
    CredentialsError,
    IntegrityError,
    RetryableError,
    TemporaryError,
    ThrottledError,
)
from wa_media.core.policy import (
    DEADLINE_FLOOR,
    DEADLINE_MARGIN,
    MAX_INTEGRITY_FAILURES,
    MEDIA_LIFETIME,
    media_deadline,
    plan_retry,
)

NOW = 1_800_000_000.0
FAR = NOW + 5 * 24 * 3600


def plan(exc: Exception, **kw: float) -> tuple[float | None, str | None]:
    args = {"attempts": 1, "integrity_failures": 0, "now": NOW, "deadline": FAR, "cap": 1800}
    args.update(kw)
    result = plan_retry(exc, rng=random.Random(0), **args)  # type: ignore[arg-type]
    return result.countdown, result.give_up


def test_deadline_is_seven_days_after_the_message() -> None:
    assert (
        media_deadline(1_700_000_000)
        == 1_700_000_000 + 7 * 24 * 3600
        == 1_700_000_000 + MEDIA_LIFETIME
    )


def test_backoff_grows_with_real_attempts() -> None:
    first, _ = plan(TemporaryError("x"), attempts=1)
    tenth, _ = plan(TemporaryError("x"), attempts=10)
    assert first is not None
    assert tenth is not None
    assert 1 <= first <= 2
    assert 512 <= tenth <= 1024


def test_retry_after_is_honoured() -> None:
    countdown, _ = plan(ThrottledError("x", retry_after=42), attempts=1)
    assert countdown is not None
    assert countdown >= 42


def test_never_scheduled_past_the_deadline_minus_the_margin() -> None:
    deadline = NOW + DEADLINE_MARGIN + 100
    countdown, reason = plan(TemporaryError("x"), attempts=30, deadline=deadline)
    assert reason is None
    assert countdown is not None
    assert countdown <= 100


def test_inside_the_margin_tries_are_brought_forward_to_the_deadline() -> None:
    countdown, reason = plan(TemporaryError("x"), attempts=30, deadline=NOW + 600)
    assert reason is None
    assert countdown == 600


def test_near_the_deadline_tries_keep_a_floor() -> None:
    countdown, reason = plan(TemporaryError("x"), attempts=30, deadline=NOW + 1)
    assert reason is None
    assert countdown == DEADLINE_FLOOR
    countdown, _ = plan(TemporaryError("x"), attempts=30, deadline=NOW + DEADLINE_MARGIN + 1)
    assert countdown == DEADLINE_FLOOR


def test_the_floor_is_the_normal_backoff_when_that_is_shorter() -> None:
    countdown, _ = plan(TemporaryError("x"), attempts=1, deadline=NOW + 1)
    assert countdown is not None
    assert 1 <= countdown <= 2


def test_past_the_deadline_gives_up() -> None:
    countdown, reason = plan(TemporaryError("down"), deadline=NOW - 1)
    assert countdown is None
    assert reason is not None
    assert reason.startswith("expired")
    assert "down" in reason


def test_integrity_failures_are_bounded() -> None:
    countdown, _ = plan(IntegrityError("bad"), integrity_failures=MAX_INTEGRITY_FAILURES - 2)
    assert countdown is not None
    countdown, reason = plan(IntegrityError("bad"), integrity_failures=MAX_INTEGRITY_FAILURES - 1)
    assert countdown is None
    assert reason is not None
    assert "did not verify" in reason


def test_waiting_for_a_lease_or_a_token_does_not_grow() -> None:
    busy, _ = plan(BusyError("busy", retry_after=15), attempts=40)
    token, _ = plan(CredentialsError("token", retry_after=60), attempts=40)
    assert busy is not None
    assert 15 <= busy <= 15 * 1.25
    assert token is not None
    assert 60 <= token <= 75


ERRORS = st.one_of(
    st.builds(TemporaryError, st.just("down")),
    st.builds(IntegrityError, st.just("bad bytes")),
    st.builds(lambda s: ThrottledError("slow", retry_after=s), st.floats(0, 7200)),
    st.builds(lambda s: BusyError("busy", retry_after=s), st.floats(0, 600)),
    st.builds(lambda s: CredentialsError("token", retry_after=s), st.floats(0, 3600)),
)
CAPS = st.sampled_from([60.0, 1800.0, 3600.0])
PROPERTY = settings(max_examples=500, deadline=None)


def plan_at(
    exc: RetryableError, attempts: int, now: float, deadline: float, cap: float, seed: int
) -> float | None:
    """The countdown planned with the jitter a seed draws (the same draws for every deadline)."""
    return plan_retry(
        exc,
        attempts=attempts,
        integrity_failures=0,
        now=now,
        deadline=deadline,
        cap=cap,
        rng=random.Random(seed),
    ).countdown


@PROPERTY
@given(ERRORS, st.integers(1, 80), st.floats(0.001, MEDIA_LIFETIME), CAPS, st.integers())
def test_before_the_deadline_a_try_never_comes_sooner_than_the_floor(
    exc: RetryableError, attempts: int, left: float, cap: float, seed: int
) -> None:
    deadline = NOW + left
    left = deadline - NOW  # as rounded
    normal = plan_at(exc, attempts, NOW, NOW + 100 * MEDIA_LIFETIME, cap, seed)
    countdown = plan_at(exc, attempts, NOW, deadline, cap, seed)

    assert normal is not None
    assert countdown is not None
    floor = min(DEADLINE_FLOOR, normal)
    assert countdown >= floor
    assert countdown >= 1
    assert countdown <= max(normal, 1)
    # Brought forward to an hour before the deadline, or inside that hour to the deadline.
    latest = left - DEADLINE_MARGIN if left > DEADLINE_MARGIN else left
    assert countdown <= max(latest, floor, 1)


@PROPERTY
@given(ERRORS, st.integers(1, 80), st.floats(0, 30 * 24 * 3600), CAPS, st.integers())
def test_at_or_after_the_deadline_the_plan_gives_up(
    exc: RetryableError, attempts: int, late: float, cap: float, seed: int
) -> None:
    plan = plan_retry(
        exc,
        attempts=attempts,
        integrity_failures=0,
        now=NOW + late,
        deadline=NOW,
        cap=cap,
        rng=random.Random(seed),
    )

    assert plan.countdown is None
    assert plan.give_up_reason == "expired"


@PROPERTY
@given(st.integers(1, 40), st.floats(0, 2 * 24 * 3600), CAPS, st.integers())
def test_a_failing_media_backs_off_until_its_deadline_then_gives_up(
    attempts: int, left: float, cap: float, seed: int
) -> None:
    rng = random.Random(seed)
    deadline, now = NOW + left, NOW
    tries_in_last_hour = 0
    while True:
        plan = plan_retry(
            TemporaryError("down"),
            attempts=attempts,
            integrity_failures=0,
            now=now,
            deadline=deadline,
            cap=cap,
            rng=rng,
        )
        if plan.countdown is None:
            break
        assert now < deadline
        now += plan.countdown
        attempts += 1
        tries_in_last_hour += deadline - DEADLINE_MARGIN <= now < deadline

    assert deadline <= now < deadline + DEADLINE_FLOOR
    # The backoff's first doublings can be shorter than the floor; after them, one try per floor.
    assert tries_in_last_hour <= DEADLINE_MARGIN / DEADLINE_FLOOR + 5
