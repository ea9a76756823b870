"""What the archive looks like right now, read from Redis: for `wa-media status` and metrics."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from redis import Redis

from wa_media.core.jobs import MediaJob
from wa_media.core.keys import (
    ARCHIVED_KEY,
    FAILED_KEY,
    PAUSED_KEY,
    PENDING_KEY,
    SWEEP_LAST_KEY,
    media_key,
)
from wa_media.core.policy import media_deadline
from wa_media.stores.broker import MEDIA_QUEUE, REPLIES_QUEUE
from wa_media.stores.records import ARCHIVED_KEPT_SECONDS, RECORD_TTL
from wa_media.stores.redis_client import decoded

__all__ = [
    "ArchivedCounts",
    "PendingMedia",
    "Snapshot",
    "archived_counts",
    "queue_keys",
    "read_snapshot",
    "stored_unix_time",
]

# kombu's Redis transport keeps one list per priority step; the step 0 list has the bare name.
_PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEP = "\x06\x16"
# Enough pending records to find the oldest in any healthy deployment, few enough that a scrape
# stays cheap when a backlog has built up (the count itself is always exact).
DEFAULT_SAMPLE = 10_000
_BATCH = 500


def queue_keys(queue: str) -> list[str]:
    """The Redis lists holding a Celery queue's messages, one per priority step."""
    return [queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS]


@dataclass(frozen=True)
class PendingMedia:
    """A media not archived yet, with the moment Meta forgets it."""

    media_id: str
    state: str
    timestamp: int
    """When the media id's 7 days began (the message's time; an echo's or history's webhook's)."""
    wamid: str = ""
    phone_number_id: str = ""
    """The account the media came to (empty where only the index member was read)."""

    @property
    def name(self) -> str:
        """`{phone_number_id}:{media_id}`, as the indexes name it; the media id alone without
        an account."""
        return f"{self.phone_number_id}:{self.media_id}" if self.phone_number_id else self.media_id

    @property
    def deadline(self) -> float:
        """When the media id stops working at the provider (7 days after `timestamp`)."""
        return media_deadline(self.timestamp)


@dataclass(frozen=True)
class Snapshot:
    """Counts and the media nearest their deadline, as of `taken_at`."""

    taken_at: float
    pending: int
    failed: int
    by_state: dict[str, int]
    queues: dict[str, int]
    paused_credentials: int
    nearest: list[PendingMedia] = field(default_factory=list)
    """Pending media, nearest their deadline first (the first is the oldest pending)."""
    sampled: int = 0
    """How many pending records were read to find `nearest` and `by_state`."""
    sweep_last: float | None = None
    """When the last sweep completed (Unix time); None when none did in the last day."""

    @property
    def oldest(self) -> PendingMedia | None:
        """The pending media closest to being lost."""
        return self.nearest[0] if self.nearest else None


def _pending_media(redis: Redis, members: list[str]) -> list[PendingMedia]:
    """The pending media the index members name (`{phone_number_id}:{media_id}`, or a media id
    alone as the previous release wrote them), read from their records' jobs."""
    found = []
    for start in range(0, len(members), _BATCH):
        batch = members[start : start + _BATCH]
        with redis.pipeline(transaction=False) as pipe:
            for member in batch:
                pipe.hmget(media_key(member), "state", "job")
            rows = pipe.execute()
        for state, job in rows:
            if state is None or job is None:
                continue  # expired, or settled since the index was read
            state_text = decoded(state)
            if state_text in ("archived", "failed"):
                continue
            document = MediaJob.model_validate_json(job)
            found.append(
                PendingMedia(
                    document.media_id,
                    state_text,
                    document.window_start,
                    document.wamid,
                    document.phone_number_id,
                )
            )
    return found


def read_snapshot(
    redis: Redis, *, sample: int = DEFAULT_SAMPLE, nearest: int = 10, now: float | None = None
) -> Snapshot:
    """Read the counts and the media nearest their deadline; RedisUnavailable when Redis fails."""
    now = time.time() if now is None else now
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(PENDING_KEY)
        pipe.zcount(FAILED_KEY, now - RECORD_TTL, "+inf")
        for queue in (MEDIA_QUEUE, REPLIES_QUEUE):
            for key in queue_keys(queue):
                pipe.llen(key)
        pipe.get(SWEEP_LAST_KEY)
        pipe.zcount(PAUSED_KEY, now, "+inf")
        pipe.zrange(PENDING_KEY, 0, sample - 1)
        results = pipe.execute()
    pending, failed = int(results[0]), int(results[1])
    steps = len(_PRIORITY_STEPS)
    lengths = results[2 : 2 + 2 * steps]
    queues = {
        MEDIA_QUEUE: sum(int(n) for n in lengths[:steps]),
        REPLIES_QUEUE: sum(int(n) for n in lengths[steps:]),
    }
    members = [decoded(m) for m in results[-1]]
    media = sorted(_pending_media(redis, members), key=lambda m: m.timestamp)
    by_state: dict[str, int] = {}
    for item in media:
        by_state[item.state] = by_state.get(item.state, 0) + 1
    return Snapshot(
        taken_at=now,
        pending=pending,
        failed=failed,
        by_state=by_state,
        queues=queues,
        paused_credentials=int(results[-2]),
        nearest=media[:nearest],
        sampled=len(members),
        sweep_last=stored_unix_time(results[-3]),
    )


def stored_unix_time(value: bytes | str | None) -> float | None:
    """A stored Unix time, or None when absent or unreadable."""
    if value is None:
        return None
    try:
        moment = float(decoded(value))
    except ValueError:
        return None
    return moment if math.isfinite(moment) and moment > 0 else None


@dataclass(frozen=True)
class ArchivedCounts:
    """Media archived in the last hour and the last day, as of `taken_at`."""

    taken_at: float
    last_hour: int
    last_day: int


def archived_counts(redis: Redis, *, now: float | None = None) -> ArchivedCounts:
    """Count the media archived in the last hour and day (`wa:archived`); RedisUnavailable
    when Redis fails."""
    now = time.time() if now is None else now
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(ARCHIVED_KEY, now - 3600, "+inf")
        pipe.zcount(ARCHIVED_KEY, now - ARCHIVED_KEPT_SECONDS, "+inf")
        hour, day = pipe.execute()
    return ArchivedCounts(now, int(hour), int(day))
