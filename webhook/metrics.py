"""`GET /metrics` of `web`: its request counts, and the archive's state read from Redis."""

from __future__ import annotations

import time
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError

from worker.logs import get_logger
from worker.metrics import exposition_registry, web_metrics
from worker.stats import Snapshot, read_snapshot

__all__ = ["COUNTED_ENDPOINTS", "StateCollector", "bp", "count_request", "state_metrics"]

bp = Blueprint("metrics", __name__)
log = get_logger(__name__)

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


class StateCollector:
    """Reads the archive's state from Redis at every scrape (worker/stats.py)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def collect(self) -> Iterable[Metric]:
        """The state's gauges; none when Redis does not answer (the counters still are)."""
        try:
            snapshot = read_snapshot(self._redis, now=time.time())
        except (RedisError, OSError) as exc:
            log.warning("metrics_state_unavailable", reason=str(exc))
            return []
        return state_metrics(snapshot)


def count_request(response: Response) -> Response:
    """Count a webhook request by the status it was answered."""
    if request.endpoint in COUNTED_ENDPOINTS:
        web_metrics().requests.labels(status=str(response.status_code)).inc()
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition: every gunicorn worker's counts, and the Redis state."""
    redis: Redis = current_app.extensions["wa.redis"]
    registry = exposition_registry(StateCollector(redis))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
