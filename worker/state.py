"""The service's records in Redis: per-media state, leases and the reply ledger.

Every key starts with `wa:` and expires: records after 8 days (past Meta's 7-day window),
leases after a minute unless renewed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.exceptions import RedisError

from worker.errors import BusyError, StorageError

__all__ = [
    "LEASE_TTL",
    "RECORD_TTL",
    "MediaStateStore",
    "ReplyClaim",
    "ReplyLedger",
    "State",
]

RECORD_TTL = 8 * 24 * 3600
LEASE_TTL = 60
_RENEW_EVERY = LEASE_TTL / 3

State = Literal["queued", "archiving", "archived", "failed"]

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _media_key(media_id: str) -> str:
    return f"wa:media:{media_id}"


def _lease_key(media_id: str) -> str:
    return f"wa:lease:{media_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StorageError(f"Redis {action} failed: {type(exc).__name__}") from None


@dataclass
class MediaStateStore:
    """`wa:media:{media_id}` hashes (state, attempts, last_error, key, ...) and their leases."""

    redis: Redis

    def get(self, media_id: str) -> dict[str, str]:
        """The record as stored (empty when there is none)."""
        with _redis_errors("read"):
            raw = self.redis.hgetall(_media_key(media_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def _write(self, media_id: str, fields: dict[str, str], *, incr: bool = False) -> None:
        key = _media_key(media_id)
        # redis-py types `mapping` with an invariant key union that no dict[str, str] satisfies.
        mapping: dict[Any, Any] = {**fields, "updated_at": f"{time.time():.3f}"}
        with _redis_errors("write"), self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            if incr:
                pipe.hincrby(key, "attempts", 1)
            pipe.expire(key, RECORD_TTL)
            pipe.execute()

    def mark_queued(self, media_id: str, wamid: str) -> bool:
        """Record a media as queued unless known; True unless it is already archived or failed.

        A duplicate of a media still in flight is enqueued again: its lease keeps the two
        tasks from working at once, and the later one finds the media archived.
        """
        key = _media_key(media_id)
        with _redis_errors("write"):
            created = self.redis.hsetnx(key, "state", "queued")
            if created:
                self._write(media_id, {"wamid": wamid, "queued_at": f"{time.time():.3f}"})
                return True
            state = self.redis.hget(key, "state")
        return state is None or _text(state) not in ("archived", "failed")

    def mark_archiving(self, media_id: str) -> None:
        """A worker has started (or restarted) on this media."""
        self._write(media_id, {"state": "archiving"}, incr=True)

    def mark_archived(self, media_id: str, object_key: str) -> None:
        """The object and its sidecar are committed."""
        self._write(media_id, {"state": "archived", "key": object_key, "last_error": ""})

    def mark_failed(self, media_id: str, reason: str) -> None:
        """Given up: `reason` says why, for an operator."""
        self._write(media_id, {"state": "failed", "last_error": reason})

    def record_error(self, media_id: str, reason: str) -> None:
        """A try failed and another will follow."""
        self._write(media_id, {"state": "queued", "last_error": reason})

    @contextmanager
    def lease(self, media_id: str) -> Iterator[None]:
        """Hold this media exclusively, renewed in the background; BusyError if taken."""
        key = _lease_key(media_id)
        token = secrets.token_hex(8)
        with _redis_errors("lease"):
            if not self.redis.set(key, token, nx=True, ex=LEASE_TTL):
                raise BusyError("another worker holds this media's lease", retry_after=LEASE_TTL)
        stop = threading.Event()
        renew = self.redis.register_script(_RENEW)

        def heartbeat() -> None:
            while not stop.wait(_RENEW_EVERY):
                try:
                    renew(keys=[key], args=[token, LEASE_TTL])
                except (RedisError, OSError):
                    continue  # Redis may be restarting; the next beat tries again.

        beat = threading.Thread(target=heartbeat, name=f"lease-{media_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            # If Redis is unreachable now, the lease expires by itself within LEASE_TTL.
            with suppress(RedisError, OSError):
                self.redis.register_script(_RELEASE)(keys=[key], args=[token])


ReplyClaim = Literal["claimed", "sent", "in_flight"]


@dataclass
class ReplyLedger:
    """`wa:reply:{wamid}`: at most one warning per wamid, even when delivered twice."""

    redis: Redis
    claim_ttl: int = 300

    @staticmethod
    def _key(wamid: str) -> str:
        return f"wa:reply:{wamid}"

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
