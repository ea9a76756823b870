"""When to try a media again, and when to stop: pure decisions, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass

from wa_media.core.backoff import next_countdown
from wa_media.core.errors import BusyError, CredentialsError, IntegrityError, RetryableError
from wa_media.core.reasons import Reason, reason_of

__all__ = [
    "DEADLINE_FLOOR",
    "DEADLINE_MARGIN",
    "MAX_INTEGRITY_FAILURES",
    "MAX_WORKER_DEATHS",
    "MEDIA_LIFETIME",
    "RetryPlan",
    "media_deadline",
    "plan_retry",
]

# Media ids from webhooks can be fetched for 7 days after the message.
MEDIA_LIFETIME = 7 * 24 * 3600
# A try that would come later than this before the deadline is brought forward to it.
DEADLINE_MARGIN = 3600
# Inside the margin tries still back off, never sooner than this after a failure (or the normal
# backoff when it is shorter): clipping them to the time left would retry every second.
DEADLINE_FLOOR = 30.0
# A media whose tries keep killing their worker (memory, crash) is poison after this many deaths.
MAX_WORKER_DEATHS = 3
# Bytes that never match their digest will not start matching: stop after this many downloads.
MAX_INTEGRITY_FAILURES = 5
RETRY_BASE = 2.0
MIN_COUNTDOWN = 1.0


def media_deadline(timestamp: int) -> float:
    """The moment Meta forgets a webhook's media id."""
    return float(timestamp + MEDIA_LIFETIME)


@dataclass(frozen=True)
class RetryPlan:
    """Either a countdown to the next try, or the reason to give up (text and label)."""

    countdown: float | None
    give_up: str | None = None
    give_up_reason: Reason | None = None


def plan_retry(
    exc: RetryableError,
    *,
    attempts: int,
    integrity_failures: int,
    now: float,
    deadline: float,
    cap: float,
    rng: random.Random | None = None,
) -> RetryPlan:
    """Back off exponentially with jitter until the deadline, then give up.

    A try is brought forward to DEADLINE_MARGIN before the deadline, and inside that margin
    to the deadline; neither makes it sooner than DEADLINE_FLOOR (or the normal backoff, when
    that is shorter), so the last try may come a little past the deadline: it gives up.
    `attempts` counts real tries so far; waiting for a lease or for a token to work again
    does not make the next wait longer.
    """
    if isinstance(exc, IntegrityError) and integrity_failures + 1 >= MAX_INTEGRITY_FAILURES:
        return RetryPlan(
            None,
            f"bytes did not verify {integrity_failures + 1} times: {exc.reason}",
            reason_of(exc),
        )
    left = deadline - now
    if left <= 0:
        return RetryPlan(None, f"expired: the 7-day window closed ({exc.reason})", "expired")
    if isinstance(exc, BusyError | CredentialsError) and exc.retry_after is not None:
        jitter = (rng or random).uniform(0, exc.retry_after / 4)
        countdown = min(cap, exc.retry_after + jitter)
    else:
        countdown = next_countdown(
            max(0, attempts - 1), base=RETRY_BASE, cap=cap, retry_after=exc.retry_after, rng=rng
        )
    latest = left - DEADLINE_MARGIN if left > DEADLINE_MARGIN else left
    return RetryPlan(max(MIN_COUNTDOWN, min(countdown, latest), min(DEADLINE_FLOOR, countdown)))
