"""Delivering relayed webhooks and archive events: what to do after each attempt. Pure: no
client, no I/O; the clock and the random source are arguments.

An attempt ends `sent` (a 2xx) or failed, with a bounded reason. A failed delivery is tried
again after an exponential backoff with full jitter, never sooner than the destination's
`Retry-After`, never later than MAX_COUNTDOWN; once it is older than its maximum age it becomes
a dead letter. A destination failing `pause_after` attempts in a row is paused for
`pause_seconds`: its deliveries wait for the pause's end without being sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, get_args

__all__ = [
    "BACKOFF_BASE",
    "FAILURE_REASONS",
    "DeliveryKind",
    "DeliveryPolicy",
    "DeliveryRecord",
    "DeliveryState",
    "FailureReason",
    "Relay",
    "Step",
    "delivery_id",
    "failure_of_status",
    "relay_id",
    "retry_after_seconds",
    "rfc3339",
]

# The first retry comes within 2 s; the 12th and later within MAX_COUNTDOWN.
BACKOFF_BASE = 2.0

FailureReason = Literal[
    "http_4xx",
    "http_429",
    "http_5xx",
    "redirect",
    "timeout",
    "connection",
    "held_bytes_cap",
    "max_age",
    "body_missing",
    "no_destination",
]
FAILURE_REASONS: tuple[FailureReason, ...] = get_args(FailureReason)
"""Why an attempt failed (`wa_delivery_failed_total{reason}`), or why a delivery became a dead
letter without one (`held_bytes_cap`, `max_age`, `body_missing`, `no_destination`: no longer
configured)."""


def failure_of_status(status: int) -> FailureReason | None:
    """None for a 2xx (sent); otherwise the failure's reason. A 3xx is a failure: redirects
    are never followed (a destination's URL is the one configured)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return "http_429"
    if 300 <= status < 400:
        return "redirect"
    if 400 <= status < 500:
        return "http_4xx"
    return "http_5xx"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delay-seconds or an HTTP date; None when absent or
    unreadable (a date in the past is 0)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def relay_id(body: bytes, signature: str | None) -> str:
    """A webhook's relay id: 32 hex digits of a digest of its bytes and its signature. The same
    webhook delivered again (Meta retrying after a 503, or sending it twice) has the same id, so
    each destination is sent it once while its delivery is remembered, under one `webhook-id`."""
    digest = hashlib.sha256((signature or "").encode() + b"\n" + body).hexdigest()
    return digest[:32]


def delivery_id(source_id: str, destination: str) -> str:
    """`dlv_` and 32 hex digits of a digest of what is delivered (a webhook's relay id or an
    event's id) and where: the same pair always makes the same delivery, so a fan-out run twice
    or an event emitted twice makes none more."""
    digest = hashlib.sha256(f"{source_id}\n{destination}".encode()).hexdigest()
    return "dlv_" + digest[:32]


def rfc3339(unix: float) -> str:
    """A Unix time as RFC 3339 UTC with milliseconds (`2026-12-04T19:00:00.000Z`)."""
    moment = datetime.fromtimestamp(unix, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Step:
    """What follows a failed attempt: try again in `countdown` seconds, or give up (`dead`)."""

    action: Literal["retry", "dead"]
    countdown: float = 0.0
    pause: bool = False
    """Whether the destination is to be paused now (its failures in a row reached the bound)."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """The bounds of delivery (DELIVERY_* settings) and the broker's longest countdown."""

    max_age: float
    pause_after: int
    pause_seconds: float
    max_countdown: float
    base: float = BACKOFF_BASE

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniformly 0 to `base * 2**(attempts - 1)`, capped at max_countdown."""
        ceiling = min(self.max_countdown, self.base * 2.0 ** min(max(attempts - 1, 0), 30))
        return (rng or random).uniform(0, ceiling)

    def expired(self, created_at: float, now: float) -> bool:
        """Whether a delivery received at `created_at` is past its maximum age."""
        return now - created_at >= self.max_age

    def after_failure(
        self,
        *,
        attempts: int,
        created_at: float,
        now: float,
        failures_in_row: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> Step:
        """After attempt number `attempts` failed (the destination's `failures_in_row`
        counting it): retry, no sooner than `retry_after`, or dead past the maximum age. The
        last retry is due at the maximum age itself, not past it."""
        # At the bound and past it: the first attempt after a pause failing pauses again.
        pause = failures_in_row >= self.pause_after
        if self.expired(created_at, now):
            return Step("dead", pause=pause)
        countdown = self.backoff(attempts, rng)
        if retry_after is not None:
            countdown = max(countdown, retry_after)
        if pause:
            countdown = max(countdown, self.pause_seconds)
        deadline = created_at + self.max_age - now
        countdown = min(countdown, self.max_countdown, max(deadline, 0.0))
        return Step("retry", countdown, pause)

    def while_paused(
        self, pause_ends_at: float, now: float, rng: random.Random | None = None
    ) -> float:
        """The countdown of a delivery whose destination is paused until `pause_ends_at`: its
        end, spread over a second so that the waiting deliveries do not all start at once."""
        spread = (rng or random).uniform(0, 1.0)
        return min(self.max_countdown, max(0.0, pause_ends_at - now) + spread)


@dataclass(frozen=True)
class Relay:
    """One accepted webhook to relay: the `relay` member of a fan-out batch, as `web` publishes
    it (`body` travels in base64)."""

    id: str
    body: bytes
    content_type: str
    signature: str | None
    numbers: tuple[str, ...]
    received_at: float

    def to_wire(self) -> dict[str, object]:
        """The batch member."""
        return {
            "id": self.id,
            "body": base64.b64encode(self.body).decode(),
            "content_type": self.content_type,
            "signature": self.signature,
            "numbers": list(self.numbers),
            "received_at": self.received_at,
        }

    @classmethod
    def from_wire(cls, raw: object) -> Relay:
        """Read a batch member; ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("a relay member is an object")
        try:
            numbers = raw.get("numbers") or []
            signature = raw.get("signature")
            relay = cls(
                id=str(raw["id"]),
                body=base64.b64decode(str(raw["body"]), validate=True),
                content_type=str(raw.get("content_type") or "application/json"),
                signature=None if signature is None else str(signature),
                numbers=tuple(str(n) for n in numbers),
                received_at=float(raw["received_at"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"not a relay member: {type(exc).__name__}") from None
        if not relay.id or not isinstance(numbers, list):
            raise ValueError("not a relay member")
        return relay


DeliveryKind = Literal["relay", "event"]
DeliveryState = Literal["pending", "sent", "dead"]
_KINDS: dict[str, DeliveryKind] = {"relay": "relay", "event": "event"}
_STATES: dict[str, DeliveryState] = {"pending": "pending", "sent": "sent", "dead": "dead"}


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as its record holds it (`wa:delivery:{id}`)."""

    id: str
    kind: DeliveryKind
    destination: str
    state: DeliveryState
    source: str
    """The relay's id, or the event's."""
    received_at: float
    """When `web` answered the webhook 200 (relay) or the event happened: latency's start."""
    age_from: float
    """When its maximum age started: `received_at`, or its last replay."""
    attempts: int = 0
    body_ref: str | None = None
    content_type: str | None = None
    signature: str | None = None
    event: str | None = None
    """The event as JSON (`type`, `timestamp`, `data`, `phone_number_id`)."""
    last_error: str | None = None
    dead_reason: str | None = None
    dead_at: float | None = None

    @classmethod
    def from_hash(cls, delivery: str, fields: dict[str, str]) -> DeliveryRecord | None:
        """The record of a hash read from Redis; None when empty."""
        if not fields:
            return None
        kind = _KINDS.get(fields.get("kind", ""))
        state = _STATES.get(fields.get("state", ""))
        if kind is None or state is None:
            raise ValueError(f"delivery {delivery}: kind or state no release writes")
        dead_at = fields.get("dead_at")
        return cls(
            id=delivery,
            kind=kind,
            destination=fields.get("destination", ""),
            state=state,
            source=fields.get("source", ""),
            received_at=float(fields.get("received_at", "0")),
            age_from=float(fields.get("age_from") or fields.get("received_at", "0")),
            attempts=int(fields.get("attempts", "0")),
            body_ref=fields.get("body_ref") or None,
            content_type=fields.get("content_type") or None,
            signature=fields.get("signature") or None,
            event=fields.get("event") or None,
            last_error=fields.get("last_error") or None,
            dead_reason=fields.get("dead_reason") or None,
            dead_at=float(dead_at) if dead_at else None,
        )
