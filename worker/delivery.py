"""Delivering one relayed webhook or archive event: what is sent, and what follows its answer.

A relayed webhook goes byte for byte, with its `Content-Type` and `X-Hub-Signature-256` as
received, so that a consumer verifies it with its app secret as before; one that arrived
unsigned (360dialog, On-Premises) is signed per Standard Webhooks with the destination's
secret. Every delivery carries `webhook-id` (the same on every attempt) and
`webhook-timestamp`. An event's body is `{"type", "timestamp", "data"}`, its `webhook-id` the
event's id; with EVENT_PRESIGNED_URLS on, each attempt adds a fresh presigned URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from wa_media.config.destinations import Destination
from wa_media.config.settings import DeliverySettings
from wa_media.core.delivery import (
    DeliveryPolicy,
    DeliveryRecord,
    Step,
    retry_after_seconds,
    rfc3339,
)
from wa_media.observability.logs import get_logger
from wa_media.observability.metrics import worker_metrics
from wa_media.stores.deliveries import DeliveryState
from wa_media.stores.delivery_http import Answer, DeliveryClient, standard_headers

__all__ = ["Deliverer", "Outcome", "Request"]

log = get_logger(__name__)

Presign = Callable[[str, str, int], str]
"""(bucket, key, seconds) -> a presigned GET URL."""


@dataclass(frozen=True)
class Request:
    """What one attempt sends."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """How a delivery's task ends: `sent`, `duplicate` (settled already, or gone), `dead`,
    `retry` in `countdown` seconds, or `paused` (its destination is: wait `countdown`)."""

    action: Literal["sent", "duplicate", "dead", "retry", "paused"]
    countdown: float = 0.0
    reason: str = ""
    detail: str = ""


class Deliverer:
    """Sends deliveries and records what came of them."""

    def __init__(
        self,
        settings: DeliverySettings,
        destinations: dict[str, Destination],
        state: DeliveryState,
        client: DeliveryClient,
        *,
        max_countdown: float,
        presign: Presign | None = None,
    ) -> None:
        self.settings = settings
        self.destinations = destinations
        self.state = state
        self.client = client
        self.presign = presign
        self.policy = DeliveryPolicy(
            max_age=settings.max_age,
            pause_after=settings.pause_after,
            pause_seconds=settings.pause_seconds,
            max_countdown=max_countdown,
        )

    def request(
        self, record: DeliveryRecord, destination: Destination, now: float, body: bytes | None
    ) -> Request | None:
        """The attempt's body and headers (`body`: the relayed body held); None when a relayed
        body is no longer held."""
        if record.kind == "relay":
            if body is None:
                return None
            headers = {"Content-Type": record.content_type or "application/json"}
            if record.signature:
                headers["X-Hub-Signature-256"] = record.signature
                headers["webhook-id"] = record.id
                headers["webhook-timestamp"] = str(int(now))
            elif destination.secret:
                headers.update(standard_headers(destination.secret, record.id, now, body))
            return Request(body, headers)
        event = json.loads(record.event or "{}")
        data = dict(event.get("data") or {})
        if self.settings.presigned_urls and self.presign and data.get("bucket") and data.get("key"):
            seconds = self.settings.presigned_seconds
            data["url"] = self.presign(str(data["bucket"]), str(data["key"]), seconds)
            data["url_expires_at"] = rfc3339(now + seconds)
        body = json.dumps(
            {
                "type": event.get("type"),
                "timestamp": rfc3339(float(event.get("timestamp", 0))),
                "data": data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json"}
        if destination.secret:
            headers.update(standard_headers(destination.secret, record.source, now, body))
        return Request(body, headers)

    def deliver(self, ident: str) -> Outcome:
        """One attempt of delivery `ident` (none while its destination is paused)."""
        state = self.state
        metrics = worker_metrics().deliveries
        record, paused_until, held = state.begin(ident)
        if record is None or record.state != "pending":
            state.forget(ident)
            return Outcome("duplicate")
        now = time.time()
        destination = self.destinations.get(record.destination)
        if destination is None:
            return self._dead(record, "no_destination", "no longer configured", now)
        if self.policy.expired(record.age_from, now):
            return self._dead(record, "max_age", record.last_error or "", now)
        if paused_until is not None and paused_until > now:
            countdown = self.policy.while_paused(paused_until, now)
            state.look_again(ident, now + countdown + state.stall_after)
            return Outcome("paused", countdown)
        request = self.request(record, destination, now, held)
        if request is None:
            return self._dead(record, "body_missing", "the body is no longer held", now)
        attempts = record.attempts + 1
        answer = self.client.post(destination.url, request.body, request.headers)
        if answer.failure is None:
            if state.sent(record, attempts=attempts):
                metrics.sent.labels(destination=destination.name).inc()
                metrics.latency.labels(destination=destination.name).observe(
                    max(0.0, time.time() - record.received_at)
                )
                return Outcome("sent")
            return Outcome("duplicate")
        return self._failed(record, attempts, answer)

    def _failed(self, record: DeliveryRecord, attempts: int, answer: Answer) -> Outcome:
        state = self.state
        now = time.time()
        reason = answer.failure or "connection"
        worker_metrics().deliveries.failed.labels(
            destination=record.destination, reason=reason
        ).inc()
        in_row = state.failed(record, answer.detail, attempts)
        step: Step = self.policy.after_failure(
            attempts=attempts,
            created_at=record.age_from,
            now=now,
            failures_in_row=in_row,
            retry_after=retry_after_seconds(answer.retry_after, now),
        )
        if step.pause:
            state.pause(record.destination, self.settings.pause_seconds, now)
            log.warning(
                "destination_paused",
                destination=record.destination,
                failures_in_row=in_row,
                seconds=self.settings.pause_seconds,
            )
        if step.action == "dead":
            return self._dead(record, "max_age", answer.detail, now)
        state.retry_at(record, now + step.countdown)
        return Outcome("retry", step.countdown, reason, answer.detail)

    def _dead(self, record: DeliveryRecord, reason: str, detail: str, now: float) -> Outcome:
        if self.state.dead(record, reason, detail, now):
            worker_metrics().deliveries.dead_letters.labels(
                destination=record.destination, reason=reason
            ).inc()
            log.error(
                "delivery_dead_letter",
                delivery_id=record.id,
                destination=record.destination,
                kind=record.kind,
                reason=reason,
                detail=detail,
                attempts=record.attempts,
            )
            return Outcome("dead", reason=reason, detail=detail)
        return Outcome("duplicate")
