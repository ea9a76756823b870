import random

from worker.errors import (
    BusyError,
    CredentialsError,
    IntegrityError,
    TemporaryError,
    ThrottledError,
)
from worker.policy import (
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


def test_inside_the_margin_the_next_try_comes_soon() -> None:
    countdown, reason = plan(TemporaryError("x"), attempts=30, deadline=NOW + 60)
    assert reason is None
    assert countdown == 1.0


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
