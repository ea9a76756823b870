"""The read API's rate per key, shared by every `web` process through Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from wa_media.core.errors import RedisUnavailable
from wa_media.core.keys import lookup_rate_key
from wa_media.core.lookup import ApiKey, RateVerdict, rate_verdict
from wa_media.observability.logs import get_logger

__all__ = ["LookupRate"]

log = get_logger(__name__)


@dataclass
class LookupRate:
    """Counts each key's requests per one-second window (`wa:lookup-rate:*`, 2 s)."""

    redis: Redis
    per_second: int
    clock: Callable[[], float] = field(default=time.time)

    def admit(self, key: ApiKey) -> RateVerdict:
        """Count a request of `key`; whether it is within the rate. Without Redis, every
        request is (the archive's reads need no Redis; the outage is logged)."""
        now = self.clock()
        counter = lookup_rate_key(key.fingerprint, int(now))
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, 2)
                count = int(pipe.execute()[0])
        except RedisUnavailable as exc:
            log.warning("lookup_rate_unavailable", reason=exc.reason)
            return RateVerdict(True)
        return rate_verdict(count, self.per_second, now)
