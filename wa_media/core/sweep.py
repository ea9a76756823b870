"""What the sweep does with each pending media and each warning owed: pure decisions, no I/O.

The sweep (worker/tasks.py) reads the records, asks these, and carries out the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from wa_media.core.jobs import ReplyJob
from wa_media.core.records import LedgerEntry, MediaRecord

__all__ = ["MediaStep", "ReplyStep", "media_step", "reply_step"]


@dataclass(frozen=True)
class MediaStep:
    """`settle`: drop it from the pending index (settled, or its record or job is gone);
    `leased`: a worker holds it, look again at `look_again_at`; `requeue`: enqueue its job
    again, and look again at `look_again_at`, for `reason`."""

    action: Literal["settle", "leased", "requeue"]
    look_again_at: float | None = None
    reason: str | None = None


def media_step(
    record: MediaRecord, *, now: float, lease_remaining: Callable[[], float], stalled_after: float
) -> MediaStep:
    """What to do with a pending media whose look is due. `lease_remaining` (seconds left on its
    lease, 0 when nobody holds it) is asked only of a media being archived."""
    if record.state is None or record.settled or record.job is None:
        return MediaStep("settle")
    if record.state == "archiving":
        remaining = lease_remaining()
        if remaining:
            # Look again right when the lease would run out, not a whole lease later.
            return MediaStep("leased", now + remaining + 1)
        return MediaStep("requeue", now + stalled_after, "lease expired")
    return MediaStep("requeue", now + stalled_after, "queued too long")


@dataclass(frozen=True)
class ReplyStep:
    """`settle`: drop it from the index of warnings owed (sent, given up, dropped, or its job is
    gone); `wait`: it is being sent, look again at `look_again_at`; `resend`: publish its task
    again and look again at `look_again_at`."""

    action: Literal["settle", "wait", "resend"]
    look_again_at: float | None = None


def reply_step(
    job: ReplyJob | None,
    entry: LedgerEntry | None,
    *,
    now: float,
    claim_ttl: float,
    stall_after: float,
) -> ReplyStep:
    """What to do with a warning owed whose look is due, given its job (None when gone or no
    longer valid) and its ledger entry."""
    if job is None or (entry is not None and not entry.in_flight):
        return ReplyStep("settle")
    if entry is not None:
        return ReplyStep("wait", now + claim_ttl)
    return ReplyStep("resend", now + stall_after)
