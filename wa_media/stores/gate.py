"""Shared guards on calls to Meta, per access token, across every worker (state in Redis)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from redis import Redis

from wa_media.core.errors import PausedError, RedisUnavailable, ThrottledError
from wa_media.core.keys import PAUSED_KEY, pause_key, rate_key
from wa_media.observability.logs import get_logger

__all__ = ["PAUSE_SECONDS", "MetaGate", "token_fingerprint"]

log = get_logger(__name__)

# How long calls stay paused after Meta rejected the token; the first call after it probes.
PAUSE_SECONDS = 60
# PAUSED_KEY (wa_media/core/keys.py): the fingerprints of the paused tokens, scored by the end
# of their pause: what counts the pauses for `wa-media status` and /metrics without scanning
# every key of the database.
# A call waits at most this long for a slot under the rate limit before giving its task back.
_MAX_RATE_WAIT = 10.0


def token_fingerprint(token: str) -> str:
    """A short, one-way name for a token: keys and logs never hold the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class MetaGate:
    """Pauses every worker's calls while the token is rejected, and keeps calls under a rate."""

    redis: Redis
    token: str
    per_second: int
    pause_seconds: int = PAUSE_SECONDS

    def __post_init__(self) -> None:
        self.fingerprint = token_fingerprint(self.token)
        self._pause_key = pause_key(self.fingerprint)

    def check_paused(self) -> None:
        """Raise PausedError while the token is known to be rejected."""
        try:
            remaining = self.redis.ttl(self._pause_key)
        except RedisUnavailable:
            return  # Without Redis, Meta's own answer is the guard.
        if isinstance(remaining, int) and remaining > 0:
            raise PausedError(
                "calls to Meta are paused: the access token was rejected",
                retry_after=float(remaining),
            )

    def admit(self) -> None:
        """Wait for a slot under the per-token rate; PausedError while the token is rejected."""
        self.check_paused()
        waited = 0.0
        while True:
            now = time.time()
            window = int(now)
            key = rate_key(self.fingerprint, window)
            try:
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, 2)
                    count = int(pipe.execute()[0])
            except RedisUnavailable:
                return
            if count <= self.per_second:
                return
            pause = window + 1 - now
            waited += pause
            if waited > _MAX_RATE_WAIT:
                raise ThrottledError(
                    "local rate limit for calls to Meta is saturated", retry_after=1
                )
            time.sleep(pause)  # until the next one-second window opens

    def rejected(self) -> None:
        """Meta rejected the token: pause everyone's calls for a while."""
        try:
            first = self.redis.set(self._pause_key, "1", nx=True, ex=self.pause_seconds)
            if first:
                now = time.time()
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zremrangebyscore(PAUSED_KEY, "-inf", now)
                    pipe.zadd(PAUSED_KEY, {self.fingerprint: now + self.pause_seconds})
                    # Every pause is as long: the newest one ends last.
                    pipe.expire(PAUSED_KEY, self.pause_seconds)
                    pipe.execute()
        except RedisUnavailable:
            return
        if first:
            log.error(
                "access_token_rejected",
                token=self.fingerprint,
                paused_seconds=self.pause_seconds,
                action="renew WHATSAPP_ACCESS_TOKEN; calls resume by themselves once it works",
            )
