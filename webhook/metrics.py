"""The metrics of `web`: its request counts, and the archive's state read from Redis.

The gunicorn master serves them on WEB_METRICS_PORT (webhook/gunicorn_conf.py), never on the
webhook's port. A scrape costs Redis a fixed handful of commands whatever the backlog: counts
are cardinalities and list lengths, and the oldest pending media is the first member of
`wa:pending:window`, scored by the start of each media's 7-day window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flask import Response, request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import ValidationError
from redis import Redis

from wa_media.core.errors import RedisUnavailable
from wa_media.core.jobs import MediaJob
from wa_media.core.keys import (
    FAILED_KEY,
    PAUSED_KEY,
    PENDING_KEY,
    PENDING_WINDOW_KEY,
    SWEEP_LAST_KEY,
    media_key,
)
from wa_media.observability.logs import get_logger
from wa_media.observability.metrics import web_metrics
from wa_media.stores.broker import DELIVERIES_QUEUE, MEDIA_QUEUE, REPLIES_QUEUE
from wa_media.stores.deliveries import DeliveryState
from wa_media.stores.records import RECORD_TTL
from wa_media.stores.snapshot import PendingMedia, Snapshot, queue_keys, stored_unix_time

__all__ = [
    "COUNTED_ENDPOINTS",
    "DeliveryCollector",
    "StateCollector",
    "count_request",
    "delivery_metrics",
    "read_state",
    "reindex_windows",
    "state_metrics",
]

log = get_logger(__name__)
_BATCH = 500
# Adds to wa:pending:window only the media still pending, removes only those no longer: a
# worker may settle a media between the scrape's two reads. KEYS: wa:pending, the window index;
# ARGV: media ids to drop (count first), then pairs of media id and window start to add.
_REINDEX = """
local dropped, added = 0, 0
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if not redis.call('zscore', KEYS[1], ARGV[i]) then
    dropped = dropped + redis.call('zrem', KEYS[2], ARGV[i])
  end
end
for i = n + 2, #ARGV, 2 do
  if redis.call('zscore', KEYS[1], ARGV[i]) then
    added = added + redis.call('zadd', KEYS[2], 'NX', ARGV[i + 1], ARGV[i])
  end
end
local ttl = redis.call('ttl', KEYS[1])
if ttl > 0 then
  redis.call('expire', KEYS[2], ttl)
end
return {dropped, added}
"""

# The webhook's endpoints; health checks and scrapes are not webhook requests.
COUNTED_ENDPOINTS = frozenset(
    {"webhook.verify_subscription", "webhook.receive", "webhook.receive_for_account"}
)


def state_metrics(snapshot: Snapshot) -> list[Metric]:
    """The gauges a snapshot of Redis gives (pure)."""
    depth = GaugeMetricFamily(
        "wa_queue_depth", "Tasks waiting in a queue, not yet taken by a worker.", labels=["queue"]
    )
    for queue, length in sorted(snapshot.queues.items()):
        depth.add_metric([queue], length)
    oldest = snapshot.oldest
    age = 0.0 if oldest is None else max(0.0, snapshot.taken_at - oldest.timestamp)
    left = float("inf") if oldest is None else oldest.deadline - snapshot.taken_at
    return [
        depth,
        GaugeMetricFamily(
            "wa_media_pending", "Media recorded and not archived or failed yet.", snapshot.pending
        ),
        GaugeMetricFamily(
            "wa_media_failed", "Media recorded as failed in the last 8 days.", snapshot.failed
        ),
        GaugeMetricFamily(
            "wa_oldest_pending_age_seconds",
            "Age of the oldest pending media, from its message's timestamp (0: none pending).",
            age,
        ),
        GaugeMetricFamily(
            "wa_nearest_deadline_seconds",
            "Seconds before the pending media nearest its 7-day expiry is lost "
            "(+Inf: none pending; negative: past it).",
            left,
        ),
        GaugeMetricFamily(
            "wa_calls_paused",
            "1 while calls to Meta are paused because a token was rejected, else 0.",
            1 if snapshot.paused_credentials else 0,
        ),
        GaugeMetricFamily(
            "wa_sweep_last_success_timestamp_seconds",
            "When the last sweep completed, as a Unix time (0: none in the last day).",
            snapshot.sweep_last or 0.0,
        ),
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _window_start(job: bytes | str | None) -> float:
    if job is None:
        # No record any more (expired): the sweep drops it from wa:pending; until then it must
        # not pass for the oldest media.
        return float("inf")
    try:
        return float(MediaJob.model_validate_json(job).window_start)
    except ValidationError:
        return float("inf")  # no worker can archive it either; `wa-media status` shows it


def reindex_windows(redis: Redis) -> tuple[int, int]:
    """Bring wa:pending:window back in step with wa:pending; (dropped, added).

    Needed only after media were recorded or settled by a release that did not keep the index
    (an upgrade, or a rolling deploy): this release changes both sets together. It costs a read
    of every media missing from the index, once.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.zdiff([PENDING_KEY, PENDING_WINDOW_KEY])
        pipe.zdiff([PENDING_WINDOW_KEY, PENDING_KEY])
        missing_raw, stale_raw = pipe.execute()
    missing = [_text(m) for m in missing_raw]
    stale = [_text(m) for m in stale_raw]
    script = redis.register_script(_REINDEX)
    dropped = added = 0
    if stale:
        dropped, _ = script(keys=[PENDING_KEY, PENDING_WINDOW_KEY], args=[len(stale), *stale])
    for start in range(0, len(missing), _BATCH):
        batch = missing[start : start + _BATCH]
        with redis.pipeline(transaction=False) as pipe:
            for media_id in batch:
                pipe.hget(media_key(media_id), "job")
            jobs = pipe.execute()
        pairs: list[str | float] = []
        for media_id, job in zip(batch, jobs, strict=True):
            pairs += [media_id, _window_start(job)]
        _, count = script(keys=[PENDING_KEY, PENDING_WINDOW_KEY], args=[0, *pairs])
        added += int(count)
    return int(dropped), added


# The queues whose depth a scrape reads.
_QUEUES = (MEDIA_QUEUE, REPLIES_QUEUE, DELIVERIES_QUEUE)


def read_state(redis: Redis, *, now: float) -> Snapshot:
    """The counts, the oldest pending media and the last sweep's time: 18 commands in one round
    trip (the queues' depths: 4 lists each), then one to check that the oldest is still pending.

    This release changes both pending indexes together. Should they disagree (in size, or on
    the oldest media: media recorded or settled by a release that did not keep the window
    index), they are brought back in step first.
    """
    steps = len(queue_keys(MEDIA_QUEUE))
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(PENDING_KEY)
        pipe.zcard(PENDING_WINDOW_KEY)
        pipe.zcount(FAILED_KEY, now - RECORD_TTL, "+inf")
        for queue in _QUEUES:
            for key in queue_keys(queue):
                pipe.llen(key)
        pipe.zcount(PAUSED_KEY, now, "+inf")
        pipe.get(SWEEP_LAST_KEY)
        pipe.zrange(PENDING_WINDOW_KEY, 0, 0, withscores=True)
        results = pipe.execute()
    pending, indexed, failed = int(results[0]), int(results[1]), int(results[2])
    lengths = [int(n) for n in results[3 : 3 + len(_QUEUES) * steps]]
    head = results[-1]
    in_step = indexed == pending and (not head or redis.zscore(PENDING_KEY, head[0][0]) is not None)
    if not in_step:
        dropped, added = reindex_windows(redis)
        log.info("pending_window_reindexed", dropped=dropped, added=added)
        head = redis.zrange(PENDING_WINDOW_KEY, 0, 0, withscores=True)
    nearest = []
    if head and head[0][1] != float("inf"):
        member, score = head[0]
        nearest.append(PendingMedia(_text(member), "pending", int(score)))
    return Snapshot(
        taken_at=now,
        pending=pending,
        failed=failed,
        by_state={},
        queues={
            queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(_QUEUES)
        },
        paused_credentials=int(results[-3]),
        nearest=nearest,
        sampled=0,
        sweep_last=stored_unix_time(results[-2]),
    )


class StateCollector:
    """Reads the archive's state from Redis at every scrape."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def collect(self) -> Iterable[Metric]:
        """The state's gauges; none when Redis does not answer (the counters still are)."""
        try:
            snapshot = read_state(self._redis, now=time.time())
        except RedisUnavailable as exc:
            log.warning("metrics_state_unavailable", reason=str(exc))
            return []
        return state_metrics(snapshot)


def delivery_metrics(state: DeliveryState, *, now: float) -> list[Metric]:
    """The relay's and events' gauges: per destination, the age of its oldest delivery not
    settled; the bytes of bodies held; the dead letters kept."""
    oldest = GaugeMetricFamily(
        "wa_delivery_oldest_pending_seconds",
        "Age of each destination's oldest delivery not settled yet (0: none).",
        labels=["destination"],
    )
    gauges = state.gauges()
    for name, started in gauges.oldest.items():
        oldest.add_metric([name], 0.0 if started is None else max(0.0, now - started))
    return [
        oldest,
        GaugeMetricFamily(
            "wa_delivery_held_bytes",
            "Bytes of webhook bodies held in Redis for relay (RELAY_HELD_BYTES_MAX bounds it).",
            value=gauges.held_bytes,
        ),
        GaugeMetricFamily(
            "wa_delivery_dead_letters_kept",
            "Dead letters kept, listed by wa-media dead-letters.",
            value=gauges.dead_letters,
        ),
    ]


class DeliveryCollector:
    """Reads the deliveries' state from Redis at every scrape."""

    def __init__(self, redis: Redis) -> None:
        self._state = DeliveryState(redis)

    def collect(self) -> Iterable[Metric]:
        """The gauges; none when Redis does not answer."""
        try:
            return delivery_metrics(self._state, now=time.time())
        except RedisUnavailable as exc:
            log.warning("metrics_state_unavailable", reason=str(exc))
            return []


def count_request(response: Response) -> Response:
    """Count a webhook request by the status it was answered."""
    if request.endpoint in COUNTED_ENDPOINTS:
        web_metrics().requests.labels(status=str(response.status_code)).inc()
    return response
