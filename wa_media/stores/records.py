"""The service's records in Redis: per-media state, leases and the reply ledger.

Every key starts with `wa:` and expires: records after 8 days (past Meta's 7-day window),
leases after a minute unless renewed.

Records are kept per account: a media is named by its phone_number_id and media id
(`wa:media:{phone_number_id}:{media_id}`), a warning by its phone_number_id and wamid, so that
no payload of one account can read, settle, fail or answer for another's. The previous release
kept media under their id alone (`wa:media:{media_id}`, members `{media_id}` of `wa:pending`
and `wa:failed`) and warnings sent under their wamid alone (`wa:reply:{wamid}`): such a record
is still honoured, for the account its job names (a media's) or for any (a warning's, which
names none), and a media's old record moves under its account's key when first met.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script

from wa_media.core.errors import BusyError, RedisUnavailable
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.keys import (
    ARCHIVED_KEY,
    FAILED_KEY,
    PENDING_KEY,
    PENDING_WINDOW_KEY,
    REPLIES_PENDING_KEY,
    SKIPPED_KEY,
    SWEEP_LAST_KEY,
    SWEEP_LOCK_KEY,
    media_key,
    reply_job_key,
    reply_rate_key,
    reply_to_key,
)
from wa_media.core.records import (
    Attempt,
    LedgerEntry,
    MediaRecord,
    MediaRef,
    RateVerdict,
    ReplyClaim,
    ReplyRef,
    State,
)
from wa_media.stores.redis_client import decoded, naming_failures

__all__ = [
    "ARCHIVED_KEPT_SECONDS",
    "ARCHIVED_KEY",
    "FAILED_KEY",
    "LEASE_TTL",
    "PENDING_KEY",
    "PENDING_WINDOW_KEY",
    "RECORD_TTL",
    "REPLIES_PENDING_KEY",
    "SKIPPED_KEPT",
    "SKIPPED_KEY",
    "SWEEP_LAST_KEY",
    "SWEEP_LAST_TTL",
    "SWEEP_LOCK_KEY",
    "Attempt",
    "LedgerEntry",
    "MediaRecord",
    "MediaRef",
    "MediaStateStore",
    "ReplyClaim",
    "ReplyLedger",
    "ReplyLimits",
    "ReplyRef",
    "SkippedLog",
    "State",
    "holder_died",
    "holder_token",
]

RECORD_TTL = 8 * 24 * 3600
LEASE_TTL = 60

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
# A media's record written by the previous release, under its media id alone, is moved under its
# account's key when its job names this account (the job is the only place that says which
# account it was for); its places in wa:pending and wa:failed move with it. Should the
# account's own record exist already, the old one settles it only if it was settled itself.
# A record whose job names another account is left alone.
_ADOPT = """
local function adopt(scoped, legacy, pending, failed, number, member, old, ttl, now)
  local job = redis.call('hget', legacy, 'job')
  if not job then return end
  local ok, doc = pcall(cjson.decode, job)
  if not ok or type(doc) ~= 'table' or doc['phone_number_id'] ~= number then return end
  local old_state = redis.call('hget', legacy, 'state')
  local state = redis.call('hget', scoped, 'state')
  if not state then
    redis.call('hset', scoped, unpack(redis.call('hgetall', legacy)))
    local left = redis.call('pttl', legacy)
    if left > 0 then
      redis.call('pexpire', scoped, left)
    else
      redis.call('expire', scoped, ttl)
    end
    state = old_state
  elseif (old_state == 'archived' or old_state == 'failed')
      and state ~= 'archived' and state ~= 'failed' then
    redis.call('hset', scoped, 'state', old_state,
               'key', redis.call('hget', legacy, 'key') or '',
               'last_error', redis.call('hget', legacy, 'last_error') or '', 'updated_at', now)
    state = old_state
  end
  local due = redis.call('zscore', pending, old)
  local failed_at = redis.call('zscore', failed, old)
  redis.call('zrem', pending, old)
  redis.call('zrem', failed, old)
  if state == 'archived' or state == 'failed' then
    redis.call('zrem', pending, member)
  elseif due then
    redis.call('zadd', pending, 'NX', due, member)
    redis.call('expire', pending, ttl)
  end
  if state == 'failed' then
    redis.call('zadd', failed, 'NX', failed_at or now, member)
    redis.call('expire', failed, ttl)
  end
  redis.call('del', legacy)
end
"""
# KEYS: the record, the previous release's record, wa:pending, wa:failed; ARGV: the
# phone_number_id, the index member, the previous release's member (the media id), the TTL, now.
_GET = (
    _ADOPT
    + """
adopt(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return redis.call('hgetall', KEYS[1])
"""
)
# KEYS: wa:pending, wa:failed, then each media's record and the previous release's record, and
# last wa:pending:window; ARGV: now, the pending score, the TTL, then the phone_number_id, the
# index member, the media id, the wamid, the job and the window start of each media. One call
# records a whole webhook: one round trip. With `web`'s relay of the webhook, 2 more KEYS and 3
# more ARGV: its inbox record and the inbox; the relay member, its id and their TTL.
_ADMIT = (
    _ADOPT
    + """
local now, due, ttl = ARGV[1], ARGV[2], ARGV[3]
local extra = (#ARGV - 3) % 6
local n = (#ARGV - 3 - extra) / 6
local admitted, added, window = {}, false, KEYS[3 + 2 * n]
for i = 1, n do
  local record, at = KEYS[1 + 2 * i], 4 + (i - 1) * 6
  local member = ARGV[at + 1]
  adopt(record, KEYS[2 + 2 * i], KEYS[1], KEYS[2], ARGV[at], member, ARGV[at + 2], ttl, now)
  local state = redis.call('hget', record, 'state')
  if state == 'archived' and redis.call('hget', record, 'wamid') ~= ARGV[at + 3] then
    -- Another message brought this archived media (an edit): its task records it beside.
    admitted[i] = 1
  elseif state == 'archived' or state == 'failed' then
    admitted[i] = 0
  else
    if not state then
      redis.call('hset', record, 'state', 'queued', 'wamid', ARGV[at + 3], 'job', ARGV[at + 4],
                 'queued_at', now, 'updated_at', now, 'attempts', '0')
      redis.call('zadd', KEYS[1], 'NX', due, member)
      redis.call('zadd', window, 'NX', ARGV[at + 5], member)
      added = true
    end
    redis.call('expire', record, ttl)
    admitted[i] = 1
  end
end
if added then
  redis.call('expire', KEYS[1], ttl)
  redis.call('expire', window, ttl)
end
if extra == 3 then
  redis.call('set', KEYS[4 + 2 * n], ARGV[#ARGV - 2], 'EX', ARGV[#ARGV])
  redis.call('zadd', KEYS[5 + 2 * n], now, ARGV[#ARGV - 1])
  redis.call('expire', KEYS[5 + 2 * n], ARGV[#ARGV])
end
return admitted
"""
)
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

# The keys are spelled in wa_media/core/keys.py; these are their lifetimes.
# Media archived in the last day are kept in wa:archived.
ARCHIVED_KEPT_SECONDS = 24 * 3600
# wa:sweep:last is gone after a day without sweeps (read as 0).
SWEEP_LAST_TTL = 24 * 3600
# The newest skipped messages kept for `wa-media skipped`; older ones are trimmed.
SKIPPED_KEPT = 10_000


_HOST = socket.gethostname()


def holder_token() -> str:
    """A token naming this process (`host:pid:random`), for leases and claims it holds."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"


def holder_died(holder: str) -> bool:
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


@dataclass
class MediaStateStore:
    """`wa:media:{phone_number_id}:{media_id}` records and their leases, plus indexes the sweep
    and the CLI read: `wa:pending` (media not settled yet, scored by when to look at them
    again), `wa:failed` (scored by when they failed) and `wa:archived` (the last day's, scored
    by when they were archived), whose members are `{phone_number_id}:{media_id}` (or, written
    by the previous release, `{media_id}`)."""

    redis: Redis
    stall_after: float = 600.0
    """How long past its due time a queued media may wait before the sweep enqueues it again."""
    lease_ttl: int = LEASE_TTL
    """A lease not renewed for this long means its worker died."""
    _admit: Script = field(init=False, repr=False)
    _get: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Registered once: a Script computes its SHA-1 when made, and called directly (not in a
        # pipeline, which asks SCRIPT EXISTS first) it costs one round trip.
        self._admit = self.redis.register_script(_ADMIT)
        self._get = self.redis.register_script(_GET)

    def get(self, ref: MediaRef) -> MediaRecord:
        """The record (empty when there is none); a record the previous release wrote for this
        media of this account is moved under the account first."""
        keys = [ref.key, ref.legacy_key, PENDING_KEY, FAILED_KEY]
        args: list[str | int] = [
            ref.phone_number_id,
            ref.member,
            ref.media_id,
            RECORD_TTL,
            f"{time.time():.3f}",
        ]
        with naming_failures("read"):
            raw = self._get(keys=keys, args=args)
        pairs = [decoded(item) for item in raw]
        return MediaRecord.from_hash(dict(zip(pairs[::2], pairs[1::2], strict=True)))

    def resolve(self, member: str) -> MediaRef | None:
        """The media an index member names (of this release or the previous), read from its
        record's job; None when the record or its job is gone."""
        with naming_failures("read"):
            job = self.redis.hget(media_key(member), "job")
        if job is None:
            return None
        try:
            return MediaRef.of(MediaJob.model_validate_json(job))
        except ValueError:
            return None

    def _write(
        self,
        ref: MediaRef,
        fields: dict[str, str],
        *,
        incr: tuple[str, ...] = (),
        pending_at: float | None = None,
        window_start: int | None = None,
        failed: bool = False,
        archived: bool = False,
    ) -> None:
        key, member = ref.key, ref.member
        now = time.time()
        # redis-py types `mapping` with an invariant key union that no dict[str, str] satisfies.
        mapping: dict[Any, Any] = {**fields, "updated_at": f"{now:.3f}"}
        with naming_failures("write"), self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            for counter in incr:
                pipe.hincrby(key, counter, 1)
            pipe.expire(key, RECORD_TTL)
            if pending_at is None:
                pipe.zrem(PENDING_KEY, member)
                pipe.zrem(PENDING_WINDOW_KEY, member)
            else:
                pipe.zadd(PENDING_KEY, {member: pending_at})
                pipe.expire(PENDING_KEY, RECORD_TTL)
                if window_start is not None:
                    pipe.zadd(PENDING_WINDOW_KEY, {member: window_start}, nx=True)
                    pipe.expire(PENDING_WINDOW_KEY, RECORD_TTL)
            if failed:
                pipe.zadd(FAILED_KEY, {member: now})
                pipe.expire(FAILED_KEY, RECORD_TTL)
            else:
                pipe.zrem(FAILED_KEY, member)
            if archived:
                pipe.zadd(ARCHIVED_KEY, {member: now})
                pipe.zremrangebyscore(ARCHIVED_KEY, "-inf", now - ARCHIVED_KEPT_SECONDS)
                pipe.expire(ARCHIVED_KEY, ARCHIVED_KEPT_SECONDS)
            pipe.execute()

    def admit(self, job: MediaJob) -> bool:
        """Record one media announced by a webhook; see `admit_many`."""
        return self.admit_many([job])[0]

    def admit_many(
        self, jobs: list[MediaJob], relay: tuple[list[str], list[str | int]] | None = None
    ) -> list[bool]:
        """Record media announced by a webhook, in one round trip (one script call); for each,
        True unless it is already archived (by this message) or failed in its account.
        `relay`: the webhook's relay record, written in the same call (its keys and values,
        wa_media.stores.deliveries.RelayInbox.record).

        A record holds the job, so the sweep can enqueue it again if its task is lost. A
        duplicate of a media still in flight is admitted again: its lease keeps two tasks from
        working at once, and the later one finds the media archived.
        """
        if not jobs:
            return []
        now = time.time()
        args: list[str | float | int] = [f"{now:.3f}", now + self.stall_after, RECORD_TTL]
        keys = [PENDING_KEY, FAILED_KEY]
        for job in jobs:
            ref = MediaRef.of(job)
            keys += [ref.key, ref.legacy_key]
            args += [
                ref.phone_number_id,
                ref.member,
                ref.media_id,
                job.wamid,
                job.model_dump_json(exclude_defaults=True),
                job.window_start,
            ]
        keys.append(PENDING_WINDOW_KEY)
        if relay is not None:
            keys += relay[0]
            args += relay[1]
        with naming_failures("write"):
            # EVALSHA, loading the script only when Redis does not know it yet.
            admitted = self._admit(keys=keys, args=args)
        return [bool(flag) for flag in admitted]

    def start(self, ref: MediaRef) -> Attempt:
        """A worker holding the lease starts a try; an unfinished earlier try counts as a crash."""
        with naming_failures("read"):
            state = self.redis.hget(ref.key, "state")
        crashed = state is not None and decoded(state) == "archiving"
        self._write(
            ref,
            {"state": "archiving"},
            incr=("attempts", "crashes") if crashed else ("attempts",),
            pending_at=time.time() + self.lease_ttl,
        )
        return self.get(ref).attempt()

    def mark_archived(self, ref: MediaRef, object_key: str) -> None:
        """The object and its sidecar are committed."""
        self._write(ref, {"state": "archived", "key": object_key, "last_error": ""}, archived=True)

    def mark_failed(
        self, ref: MediaRef, reason: str, *, label: str | None = None, code: int | None = None
    ) -> None:
        """Given up: `reason` says why, for an operator; `label` and `code` for its event."""
        fields = {"state": "failed", "last_error": reason}
        if label is not None:
            fields["reason_label"] = label
        if code is not None:
            fields["error_code"] = str(code)
        self._write(ref, fields, failed=True)

    def mark_skipped(
        self, ref: MediaRef, reason: str, *, label: str, listed: dict[str, Any]
    ) -> None:
        """Left out by the account's policy: `failed` with a `skipped` reason, as every release
        settles it (no sweep, no second admission), but out of `wa:failed` (`wa-media failed`,
        `replay --all`, `wa_media_failed`); listed by `wa-media skipped` instead."""
        fields = {"state": "failed", "last_error": f"skipped: {reason}", "skipped": label}
        self._write(ref, fields)
        SkippedLog(self.redis).add([listed])

    def record_error(self, ref: MediaRef, reason: str, *, retry_at: float, integrity: bool) -> None:
        """A try failed and another is scheduled for `retry_at`."""
        self._write(
            ref,
            {"state": "queued", "last_error": reason, "next_try_at": f"{retry_at:.3f}"},
            incr=("integrity_failures",) if integrity else (),
            pending_at=retry_at + self.stall_after,
        )

    def due(self, now: float, limit: int = 500) -> list[str]:
        """Members of `wa:pending` the sweep should look at now."""
        with naming_failures("read"):
            members = self.redis.zrangebyscore(PENDING_KEY, "-inf", now, start=0, num=limit)
        return [decoded(member) for member in members]

    def look_again(self, member: str, at: float) -> None:
        """Push a pending media's next look to `at`."""
        with naming_failures("write"):
            self.redis.zadd(PENDING_KEY, {member: at}, xx=True)

    def forget_pending(self, member: str) -> None:
        """Drop a member from the pending indexes (its record is settled or has expired)."""
        with naming_failures("write"), self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PENDING_KEY, member)
            pipe.zrem(PENDING_WINDOW_KEY, member)
            pipe.execute()

    def lease_remaining(self, ref: MediaRef) -> float:
        """Seconds until this media's lease runs out; 0 when nobody holds it."""
        with naming_failures("read"):
            milliseconds = self.redis.pttl(ref.lease_key)
        return max(0, int(milliseconds)) / 1000

    def failed(self, limit: int = 1000) -> list[tuple[str, MediaRecord]]:
        """Failed media, oldest failure first: their members of `wa:failed`
        (`{phone_number_id}:{media_id}`) with their records."""
        with naming_failures("read"):
            self.redis.zremrangebyscore(FAILED_KEY, "-inf", time.time() - RECORD_TTL)
            members = self.redis.zrange(FAILED_KEY, 0, limit - 1)
            out = []
            for member in members:
                name = decoded(member)
                try:
                    record = MediaRecord.from_hash(self.redis.hgetall(media_key(name)))
                except ValueError:
                    continue  # a state no release writes: the sweep logs it
                if record.state == "failed":
                    out.append((name, record))
        return out

    def requeue(self, ref: MediaRef) -> MediaJob | None:
        """Reset a media for another round of tries; its job, or None if nothing is known."""
        record = self.get(ref)
        if record.job is None:
            return None
        job = MediaJob.model_validate_json(record.job)
        self._write(
            ref,
            {
                "state": "queued",
                "attempts": "0",
                "crashes": "0",
                "integrity_failures": "0",
                "requeued_at": f"{time.time():.3f}",
                # What the last outcome said goes with it (a skip replayed after the
                # account's limit was raised, a failure's label and code).
                "skipped": "",
                "reason_label": "",
                "error_code": "",
            },
            pending_at=time.time() + self.stall_after,
            window_start=job.window_start,
        )
        return job

    def _take(self, key: str, token: str, ttl: int | None = None) -> bool:
        ttl = self.lease_ttl if ttl is None else ttl
        if self.redis.set(key, token, nx=True, ex=ttl):
            return True
        holder = self.redis.get(key)
        if holder is None or not holder_died(decoded(holder)):
            return False
        # Its process on this host is gone (a killed pool process): no need to wait for expiry.
        self.redis.register_script(_RELEASE)(keys=[key], args=[holder])
        return bool(self.redis.set(key, token, nx=True, ex=ttl))

    def take_sweep_lock(self, ttl: int) -> str | None:
        """The sweep lock's token, when this process took it: free, or held by a process of
        this host that died mid-sweep; None while another sweep holds it (one whose holder died
        on another host expires after `ttl`)."""
        token = holder_token()
        with naming_failures("take the sweep lock"):
            return token if self._take(SWEEP_LOCK_KEY, token, ttl) else None

    def release_sweep_lock(self, token: str) -> None:
        """Let go of the sweep lock, if this token still holds it."""
        with naming_failures("release the sweep lock"):
            self.redis.register_script(_RELEASE)(keys=[SWEEP_LOCK_KEY], args=[token])

    @contextmanager
    def lease(self, ref: MediaRef, *, renew_until: float | None = None) -> Iterator[None]:
        """Hold this media exclusively, renewed in the background; BusyError if taken.

        Past `renew_until` (time.monotonic()) the lease is no longer renewed: a try stuck past
        its deadline lets its lease expire, and the sweep hands the media to another worker.
        """
        key = ref.lease_key
        token = holder_token()
        with naming_failures("lease"):
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
                except RedisUnavailable:
                    continue  # Redis may be restarting; the next beat tries again.

        beat = threading.Thread(target=heartbeat, name=f"lease-{ref.media_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            # If Redis is unreachable now, the lease expires by itself within the lease TTL.
            with suppress(RedisUnavailable):
                self.redis.register_script(_RELEASE)(keys=[key], args=[token])


# KEYS: the account's ledger entry, the previous release's (by wamid alone); ARGV: the claim's
# TTL. Returns what either holds, or nil after taking the claim.
_CLAIM = """
local value = redis.call('get', KEYS[1]) or redis.call('get', KEYS[2])
if value then
  return value
end
redis.call('set', KEYS[1], 'sending', 'EX', ARGV[1])
return false
"""
# KEYS: the recipient's slot, the account's count for this minute; ARGV: the wamid, the slot's
# TTL (REPLY_RECIPIENT_INTERVAL), the warnings an account may send a minute.
_ADMIT_REPLY = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  return 'ok'
end
if holder then
  return 'recipient_rate'
end
if tonumber(redis.call('get', KEYS[2]) or '0') >= tonumber(ARGV[3]) then
  return 'account_rate'
end
redis.call('incr', KEYS[2])
redis.call('expire', KEYS[2], 120)
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 'ok'
"""


@dataclass
class ReplyLedger:
    """`wa:reply:{phone_number_id}:{wamid}`: at most one warning per wamid of an account, even
    when delivered twice; and the warnings owed, `wa:reply-job:{phone_number_id}:{wamid}`
    indexed by `wa:replies:pending`, so that a reply task lost with its worker (or refused by a
    worker of an older release) is sent again. An entry the previous release wrote under the
    wamid alone (`wa:reply:{wamid}`) still counts: the warning is not sent again."""

    redis: Redis
    claim_ttl: int = 300
    stall_after: float = 600.0
    _claim: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._claim = self.redis.register_script(_CLAIM)

    def admit_many(self, jobs: list[ReplyJob]) -> None:
        """Record the warnings a webhook owes, before their tasks are published."""
        if not jobs:
            return
        due = time.time() + self.stall_after
        with naming_failures("write"), self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                ref = ReplyRef.of(job)
                pipe.set(
                    ref.job_key, job.model_dump_json(exclude_defaults=True), nx=True, ex=RECORD_TTL
                )
                pipe.zadd(REPLIES_PENDING_KEY, {ref.member: due}, nx=True)
            pipe.expire(REPLIES_PENDING_KEY, RECORD_TTL)
            pipe.execute()

    def settled(self, member: str) -> None:
        """The warning was sent, given up or dropped: no sweep needs to look at it again."""
        with naming_failures("write"):
            self.redis.zrem(REPLIES_PENDING_KEY, member)

    def due(self, now: float, limit: int = 500) -> list[tuple[str, str | None]]:
        """Warnings the sweep should look at now: (member, job JSON)."""
        with naming_failures("read"):
            members = [
                decoded(m)
                for m in self.redis.zrangebyscore(
                    REPLIES_PENDING_KEY, "-inf", now, start=0, num=limit
                )
            ]
            if not members:
                return []
            with self.redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.get(reply_job_key(member))
                rows = pipe.execute()
        return [
            (member, None if row is None else decoded(row))
            for member, row in zip(members, rows, strict=True)
        ]

    def look_again(self, member: str, at: float) -> None:
        """Push a pending warning's next look to `at`."""
        with naming_failures("write"):
            self.redis.zadd(REPLIES_PENDING_KEY, {member: at}, xx=True)

    def status(self, ref: ReplyRef) -> LedgerEntry | None:
        """What the ledger holds for this warning (the previous release's entry when the
        account's is absent): `sending`, `sent`, `failed: ...`, `dropped: ...`, or None."""
        with naming_failures("read"):
            value = self.redis.get(ref.key)
            if value is None:
                value = self.redis.get(ref.legacy_key)
        return None if value is None else LedgerEntry.parse(value)

    def claim(self, ref: ReplyRef) -> ReplyClaim:
        """Take the right to send, or learn it was sent (or settled) or is being sent."""
        with naming_failures("reply claim"):
            value = self._claim(keys=[ref.key, ref.legacy_key], args=[self.claim_ttl])
        if value is None:
            return "claimed"
        return "in_flight" if decoded(value) == "sending" else "sent"

    def settle(self, ref: ReplyRef, entry: LedgerEntry) -> None:
        """Record the final outcome (`sent`, `failed: reason`, `dropped: reason`) for 8 days."""
        with naming_failures("reply settle"):
            self.redis.set(ref.key, entry.text, ex=RECORD_TTL)

    def release(self, ref: ReplyRef) -> None:
        """Give the claim back after a failed try, so the retry may claim it again."""
        with naming_failures("reply release"):
            self.redis.delete(ref.key)


def _fingerprint(text: str) -> str:
    # Redis keys name customers by a digest, not their number or BSUID.
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ReplyLimits:
    """The warnings' rates, per account (`wa:reply-rate:{phone_number_id}:{minute}`, at most
    `per_minute`) and per customer of an account (`wa:reply-to:{phone_number_id}:{recipient
    fingerprint}`, one warning per `interval` seconds), so that no flood of 131052s makes the
    service a spam cannon. Meta's own rate budget stays per token (wa_media/stores/gate.py)."""

    redis: Redis
    per_minute: int = 60
    interval: int = 3600
    _admit: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._admit = self.redis.register_script(_ADMIT_REPLY)

    @staticmethod
    def _slot(ref: ReplyRef, recipient: str) -> str:
        return reply_to_key(ref.phone_number_id, _fingerprint(recipient))

    def admit(self, ref: ReplyRef, recipient: str) -> RateVerdict | None:
        """None when this warning may be sent now (taking the recipient's slot and a place in
        the account's minute), else why not: `recipient_rate` or `account_rate`. A warning
        tried again keeps the slot it took."""
        minute = int(time.time() // 60)
        keys = [self._slot(ref, recipient), reply_rate_key(ref.phone_number_id, minute)]
        with naming_failures("reply rate"):
            verdict = decoded(
                self._admit(keys=keys, args=[ref.wamid, self.interval, self.per_minute])
            )
        if verdict == "recipient_rate":
            return "recipient_rate"
        if verdict == "account_rate":
            return "account_rate"
        return None

    def forget(self, ref: ReplyRef, recipient: str) -> None:
        """Free the recipient's slot this warning took: it was never delivered."""
        with naming_failures("reply rate"):
            self.redis.register_script(_RELEASE)(
                keys=[self._slot(ref, recipient)], args=[ref.wamid]
            )


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
        with naming_failures("write"), self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(SKIPPED_KEY, members)
            pipe.zremrangebyrank(SKIPPED_KEY, 0, -SKIPPED_KEPT - 1)
            pipe.zremrangebyscore(SKIPPED_KEY, "-inf", now - RECORD_TTL)
            pipe.expire(SKIPPED_KEY, RECORD_TTL)
            pipe.execute()

    def newest(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest skipped messages, newest first."""
        with naming_failures("read"):
            members = self.redis.zrevrange(SKIPPED_KEY, 0, limit - 1)
        return [json.loads(decoded(member)) for member in members]
