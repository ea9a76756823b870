"""The service's records in Redis: per-media state, leases and the reply ledger.

Every key starts with `wa:` and expires: records after 8 days (past Meta's 7-day window),
leases after a minute unless renewed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from worker.errors import BusyError, RedisUnavailable
from worker.jobs import MediaJob, ReplyJob

__all__ = [
    "FAILED_KEY",
    "LEASE_TTL",
    "PENDING_KEY",
    "RECORD_TTL",
    "REPLIES_PENDING_KEY",
    "SKIPPED_KEPT",
    "SKIPPED_KEY",
    "Attempt",
    "MediaStateStore",
    "ReplyClaim",
    "ReplyLedger",
    "SkippedLog",
    "State",
]

RECORD_TTL = 8 * 24 * 3600
LEASE_TTL = 60

State = Literal["queued", "archiving", "archived", "failed"]

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: wa:pending, then the media records; ARGV: now, the pending score, the TTL, then
# media_id, wamid and job of each media. One call records a whole webhook: one round trip.
_ADMIT = """
local now, due, ttl = ARGV[1], ARGV[2], ARGV[3]
local admitted, added = {}, false
for i = 2, #KEYS do
  local at = 4 + (i - 2) * 3
  local state = redis.call('hget', KEYS[i], 'state')
  if state == 'archived' or state == 'failed' then
    admitted[i - 1] = 0
  else
    if not state then
      redis.call('hset', KEYS[i], 'state', 'queued', 'wamid', ARGV[at + 1], 'job', ARGV[at + 2],
                 'queued_at', now, 'updated_at', now, 'attempts', '0')
      redis.call('zadd', KEYS[1], 'NX', due, ARGV[at])
      added = true
    end
    redis.call('expire', KEYS[i], ttl)
    admitted[i - 1] = 1
  end
end
if added then
  redis.call('expire', KEYS[1], ttl)
end
return admitted
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


PENDING_KEY = "wa:pending"
FAILED_KEY = "wa:failed"
REPLIES_PENDING_KEY = "wa:replies:pending"
SKIPPED_KEY = "wa:skipped"
# The newest skipped messages kept for `wa-media skipped`; older ones are trimmed.
SKIPPED_KEPT = 10_000


def _media_key(media_id: str) -> str:
    return f"wa:media:{media_id}"


def _lease_key(media_id: str) -> str:
    return f"wa:lease:{media_id}"


_HOST = socket.gethostname()


def _holder_died(holder: str) -> bool:
    """True when a lease's holder is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"Redis {action} failed: {type(exc).__name__}") from None


@dataclass(frozen=True)
class Attempt:
    """What a worker learns when it starts on a media."""

    attempts: int
    crashes: int
    """Earlier attempts that never finished: the worker running them died."""
    integrity_failures: int


@dataclass
class MediaStateStore:
    """`wa:media:{media_id}` records and their leases, plus two indexes the sweep and the CLI
    read: `wa:pending` (media not settled yet, scored by when to look at them again) and
    `wa:failed` (scored by when they failed)."""

    redis: Redis
    stall_after: float = 600.0
    """How long past its due time a queued media may wait before the sweep enqueues it again."""
    lease_ttl: int = LEASE_TTL
    """A lease not renewed for this long means its worker died."""
    _admit: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Registered once: a Script computes its SHA-1 when made, and called directly (not in a
        # pipeline, which asks SCRIPT EXISTS first) it costs one round trip.
        self._admit = self.redis.register_script(_ADMIT)

    def get(self, media_id: str) -> dict[str, str]:
        """The record as stored (empty when there is none)."""
        with _redis_errors("read"):
            raw = self.redis.hgetall(_media_key(media_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def _write(
        self,
        media_id: str,
        fields: dict[str, str],
        *,
        incr: tuple[str, ...] = (),
        pending_at: float | None = None,
        failed: bool = False,
    ) -> None:
        key = _media_key(media_id)
        now = time.time()
        # redis-py types `mapping` with an invariant key union that no dict[str, str] satisfies.
        mapping: dict[Any, Any] = {**fields, "updated_at": f"{now:.3f}"}
        with _redis_errors("write"), self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            for counter in incr:
                pipe.hincrby(key, counter, 1)
            pipe.expire(key, RECORD_TTL)
            if pending_at is None:
                pipe.zrem(PENDING_KEY, media_id)
            else:
                pipe.zadd(PENDING_KEY, {media_id: pending_at})
                pipe.expire(PENDING_KEY, RECORD_TTL)
            if failed:
                pipe.zadd(FAILED_KEY, {media_id: now})
                pipe.expire(FAILED_KEY, RECORD_TTL)
            else:
                pipe.zrem(FAILED_KEY, media_id)
            pipe.execute()

    def admit(self, job: MediaJob) -> bool:
        """Record one media announced by a webhook; see `admit_many`."""
        return self.admit_many([job])[0]

    def admit_many(self, jobs: list[MediaJob]) -> list[bool]:
        """Record media announced by a webhook, in one round trip (one script call); for each,
        True unless it is already archived or failed.

        A record holds the job, so the sweep can enqueue it again if its task is lost. A
        duplicate of a media still in flight is admitted again: its lease keeps two tasks from
        working at once, and the later one finds the media archived.
        """
        if not jobs:
            return []
        now = time.time()
        args: list[str | float | int] = [f"{now:.3f}", now + self.stall_after, RECORD_TTL]
        for job in jobs:
            args += [job.media_id, job.wamid, job.model_dump_json(exclude_defaults=True)]
        keys = [PENDING_KEY, *(_media_key(job.media_id) for job in jobs)]
        with _redis_errors("write"):
            # EVALSHA, loading the script only when Redis does not know it yet.
            admitted = self._admit(keys=keys, args=args)
        return [bool(flag) for flag in admitted]

    def start(self, media_id: str) -> Attempt:
        """A worker holding the lease starts a try; an unfinished earlier try counts as a crash."""
        key = _media_key(media_id)
        with _redis_errors("read"):
            state = self.redis.hget(key, "state")
        crashed = state is not None and _text(state) == "archiving"
        self._write(
            media_id,
            {"state": "archiving"},
            incr=("attempts", "crashes") if crashed else ("attempts",),
            pending_at=time.time() + self.lease_ttl,
        )
        record = self.get(media_id)
        return Attempt(
            attempts=int(record.get("attempts", 1)),
            crashes=int(record.get("crashes", 0)),
            integrity_failures=int(record.get("integrity_failures", 0)),
        )

    def mark_archived(self, media_id: str, object_key: str) -> None:
        """The object and its sidecar are committed."""
        self._write(media_id, {"state": "archived", "key": object_key, "last_error": ""})

    def mark_failed(self, media_id: str, reason: str) -> None:
        """Given up: `reason` says why, for an operator."""
        self._write(media_id, {"state": "failed", "last_error": reason}, failed=True)

    def record_error(self, media_id: str, reason: str, *, retry_at: float, integrity: bool) -> None:
        """A try failed and another is scheduled for `retry_at`."""
        self._write(
            media_id,
            {"state": "queued", "last_error": reason, "next_try_at": f"{retry_at:.3f}"},
            incr=("integrity_failures",) if integrity else (),
            pending_at=retry_at + self.stall_after,
        )

    def due(self, now: float, limit: int = 500) -> list[str]:
        """Media the sweep should look at now."""
        with _redis_errors("read"):
            members = self.redis.zrangebyscore(PENDING_KEY, "-inf", now, start=0, num=limit)
        return [_text(member) for member in members]

    def look_again(self, media_id: str, at: float) -> None:
        """Push a pending media's next look to `at`."""
        with _redis_errors("write"):
            self.redis.zadd(PENDING_KEY, {media_id: at}, xx=True)

    def forget_pending(self, media_id: str) -> None:
        """Drop a media from the pending index (its record is settled or has expired)."""
        with _redis_errors("write"):
            self.redis.zrem(PENDING_KEY, media_id)

    def lease_remaining(self, media_id: str) -> float:
        """Seconds until this media's lease runs out; 0 when nobody holds it."""
        with _redis_errors("read"):
            milliseconds = self.redis.pttl(_lease_key(media_id))
        return max(0, int(milliseconds)) / 1000

    def failed(self, limit: int = 1000) -> list[tuple[str, dict[str, str]]]:
        """Failed media, oldest failure first, with their records."""
        with _redis_errors("read"):
            self.redis.zremrangebyscore(FAILED_KEY, "-inf", time.time() - RECORD_TTL)
            members = self.redis.zrange(FAILED_KEY, 0, limit - 1)
        out = []
        for member in members:
            media_id = _text(member)
            record = self.get(media_id)
            if record.get("state") == "failed":
                out.append((media_id, record))
        return out

    def requeue(self, media_id: str) -> MediaJob | None:
        """Reset a media for another round of tries; its job, or None if nothing is known."""
        record = self.get(media_id)
        if "job" not in record:
            return None
        job = MediaJob.model_validate_json(record["job"])
        self._write(
            media_id,
            {
                "state": "queued",
                "attempts": "0",
                "crashes": "0",
                "integrity_failures": "0",
                "requeued_at": f"{time.time():.3f}",
            },
            pending_at=time.time() + self.stall_after,
        )
        return job

    def _take(self, key: str, token: str) -> bool:
        if self.redis.set(key, token, nx=True, ex=self.lease_ttl):
            return True
        holder = self.redis.get(key)
        if holder is None or not _holder_died(_text(holder)):
            return False
        # Its process on this host is gone (a killed pool process): no need to wait for expiry.
        self.redis.register_script(_RELEASE)(keys=[key], args=[holder])
        return bool(self.redis.set(key, token, nx=True, ex=self.lease_ttl))

    @contextmanager
    def lease(self, media_id: str, *, renew_until: float | None = None) -> Iterator[None]:
        """Hold this media exclusively, renewed in the background; BusyError if taken.

        Past `renew_until` (time.monotonic()) the lease is no longer renewed: a try stuck past
        its deadline lets its lease expire, and the sweep hands the media to another worker.
        """
        key = _lease_key(media_id)
        token = f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"
        with _redis_errors("lease"):
            if not self._take(key, token):
                raise BusyError(
                    "another worker holds this media's lease", retry_after=self.lease_ttl / 4
                )
        stop = threading.Event()
        renew = self.redis.register_script(_RENEW)

        def heartbeat() -> None:
            while not stop.wait(self.lease_ttl / 3):
                if renew_until is not None and time.monotonic() >= renew_until:
                    return
                try:
                    renew(keys=[key], args=[token, self.lease_ttl])
                except (RedisError, OSError):
                    continue  # Redis may be restarting; the next beat tries again.

        beat = threading.Thread(target=heartbeat, name=f"lease-{media_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            # If Redis is unreachable now, the lease expires by itself within the lease TTL.
            with suppress(RedisError, OSError):
                self.redis.register_script(_RELEASE)(keys=[key], args=[token])


ReplyClaim = Literal["claimed", "sent", "in_flight"]


def _reply_job_key(wamid: str) -> str:
    return f"wa:reply-job:{wamid}"


@dataclass
class ReplyLedger:
    """`wa:reply:{wamid}`: at most one warning per wamid, even when delivered twice; and the
    warnings owed, `wa:reply-job:{wamid}` indexed by `wa:replies:pending`, so that a reply task
    lost with its worker (or refused by a worker of an older release) is sent again."""

    redis: Redis
    claim_ttl: int = 300
    stall_after: float = 600.0

    @staticmethod
    def _key(wamid: str) -> str:
        return f"wa:reply:{wamid}"

    def admit_many(self, jobs: list[ReplyJob]) -> None:
        """Record the warnings a webhook owes, before their tasks are published."""
        if not jobs:
            return
        due = time.time() + self.stall_after
        with _redis_errors("write"), self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.set(
                    _reply_job_key(job.wamid),
                    job.model_dump_json(exclude_defaults=True),
                    nx=True,
                    ex=RECORD_TTL,
                )
                pipe.zadd(REPLIES_PENDING_KEY, {job.wamid: due}, nx=True)
            pipe.expire(REPLIES_PENDING_KEY, RECORD_TTL)
            pipe.execute()

    def settled(self, wamid: str) -> None:
        """The warning was sent, or given up: no sweep needs to look at it again."""
        with _redis_errors("write"):
            self.redis.zrem(REPLIES_PENDING_KEY, wamid)

    def due(self, now: float, limit: int = 500) -> list[tuple[str, str | None, str | None]]:
        """Warnings the sweep should look at now: (wamid, ledger state, job JSON)."""
        with _redis_errors("read"):
            members = [
                _text(m)
                for m in self.redis.zrangebyscore(
                    REPLIES_PENDING_KEY, "-inf", now, start=0, num=limit
                )
            ]
            if not members:
                return []
            with self.redis.pipeline(transaction=False) as pipe:
                for wamid in members:
                    pipe.get(self._key(wamid))
                    pipe.get(_reply_job_key(wamid))
                rows = pipe.execute()
        return [
            (
                wamid,
                None if rows[2 * i] is None else _text(rows[2 * i]),
                None if rows[2 * i + 1] is None else _text(rows[2 * i + 1]),
            )
            for i, wamid in enumerate(members)
        ]

    def look_again(self, wamid: str, at: float) -> None:
        """Push a pending warning's next look to `at`."""
        with _redis_errors("write"):
            self.redis.zadd(REPLIES_PENDING_KEY, {wamid: at}, xx=True)

    def claim(self, wamid: str) -> ReplyClaim:
        """Take the right to send, or learn it was sent or is being sent."""
        key = self._key(wamid)
        with _redis_errors("reply claim"):
            if self.redis.set(key, "sending", nx=True, ex=self.claim_ttl):
                return "claimed"
            value = self.redis.get(key)
        return "in_flight" if value is not None and _text(value) == "sending" else "sent"

    def settle(self, wamid: str, outcome: str) -> None:
        """Record the final outcome (`sent`, or `failed: reason`) for 8 days."""
        with _redis_errors("reply settle"):
            self.redis.set(self._key(wamid), outcome, ex=RECORD_TTL)

    def release(self, wamid: str) -> None:
        """Give the claim back after a failed try, so the retry may claim it again."""
        with _redis_errors("reply release"):
            self.redis.delete(self._key(wamid))


@dataclass
class SkippedLog:
    """`wa:skipped`: the newest messages that looked like media but were not archived, with
    why, for `wa-media skipped` (scored by when they arrived; 8 days, the newest 10,000)."""

    redis: Redis

    def add(self, entries: list[dict[str, Any]]) -> None:
        """Remember skipped messages (already JSON-ready dicts)."""
        if not entries:
            return
        now = time.time()
        members: dict[Any, float] = {
            json.dumps({**entry, "at": round(now, 3)}, sort_keys=True): now for entry in entries
        }
        with _redis_errors("write"), self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(SKIPPED_KEY, members)
            pipe.zremrangebyrank(SKIPPED_KEY, 0, -SKIPPED_KEPT - 1)
            pipe.zremrangebyscore(SKIPPED_KEY, "-inf", now - RECORD_TTL)
            pipe.expire(SKIPPED_KEY, RECORD_TTL)
            pipe.execute()

    def newest(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest skipped messages, newest first."""
        with _redis_errors("read"):
            members = self.redis.zrevrange(SKIPPED_KEY, 0, limit - 1)
        return [json.loads(_text(member)) for member in members]
