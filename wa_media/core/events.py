"""Archive events: what a consumer endpoint is told about a media (docs/consuming.md).

Pure: an `Event` is built from what the worker knows (the job, the sidecar, the reason it gave
up) and handed to an `EventSink` (wa_media/core/ports.py), which delivers it durably. Its id is
stable: the same media's same outcome always has the same id, so a consumer deduplicates
redeliveries, and a worker that archives a media again after a crash sends no new event.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from wa_media.core.jobs import Customer, MediaJob

__all__ = [
    "EVENTS_RECORD_PREFIX",
    "EVENT_TYPES",
    "TOO_LARGE_CODE",
    "TOO_LARGE_LABEL",
    "Event",
    "EventType",
    "archived_event",
    "event_id",
    "events_record_id",
    "failed_event",
    "skipped_event",
    "too_large_event",
]

EventType = Literal["media.archived", "media.failed", "media.skipped"]
EVENT_TYPES: tuple[EventType, ...] = ("media.archived", "media.failed", "media.skipped")


# The ids of the records `web` keeps of the events it decided (in the relay inbox, beside the
# relays' own): `ev_` and a digest of the events' ids.
EVENTS_RECORD_PREFIX = "ev_"


def events_record_id(event_ids: list[str]) -> str:
    """The id of the record of a fan-out batch's events: the same events, the same record."""
    digest = hashlib.sha256("\n".join(event_ids).encode()).hexdigest()
    return EVENTS_RECORD_PREFIX + digest[:32]


def event_id(event_type: EventType, phone_number_id: str, wamid: str, media_id: str) -> str:
    """`evt_` and 32 hex digits of a digest of what the event is about: the same outcome of the
    same message's media gives the same id, whichever worker, try or release sends it."""
    subject = "\n".join((event_type, phone_number_id, wamid, media_id))
    return "evt_" + hashlib.sha256(subject.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Event:
    """One event for the consumer endpoints of `phone_number_id`'s account.

    `data` is the event's `data` object (JSON-ready); `timestamp` (Unix seconds) is when what
    it tells happened. Its envelope (`type`, `timestamp`, `data`) follows the Standard Webhooks
    payload structure; the id travels as the `webhook-id` header.
    """

    type: EventType
    phone_number_id: str
    id: str
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The event as a task argument (JSON types): how `web` hands it to the fan-out."""
        return {
            "type": self.type,
            "phone_number_id": self.phone_number_id,
            "id": self.id,
            "timestamp": self.timestamp,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, raw: Any) -> Event:
        """The event `to_wire` gave; ValueError for anything else."""
        if not isinstance(raw, dict):
            raise ValueError("an event is a JSON object")
        kind, number, ident = raw.get("type"), raw.get("phone_number_id"), raw.get("id")
        timestamp, data = raw.get("timestamp"), raw.get("data", {})
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {str(kind)[:40]!r}")
        if not (isinstance(number, str) and number and isinstance(ident, str) and ident):
            raise ValueError("an event names its account and its id")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise ValueError("an event's timestamp is a number")
        if not math.isfinite(timestamp) or not isinstance(data, dict):
            raise ValueError("an event has a finite timestamp and a data object")
        return cls(kind, number, ident, float(timestamp), data)


# ------------------------------------------------------------------------------- the builders

# What a 131052 event says (the customer's file never reached WhatsApp's servers).
TOO_LARGE_CODE = 131052
TOO_LARGE_LABEL = "too_large"
_TOO_LARGE_REASON = "WhatsApp could not deliver the customer's media (over 100 MB)"


def _customer(customer: Customer | None) -> dict[str, str | None]:
    return {
        "phone": customer.phone if customer else None,
        "user_id": customer.user_id if customer else None,
        "parent_user_id": customer.parent_user_id if customer else None,
        "username": customer.username if customer else None,
    }


def _identity(job: MediaJob) -> dict[str, Any]:
    """What every media event says of the message: the account, the ids, who, which way."""
    return {
        "phone_number_id": job.phone_number_id,
        "waba_id": job.waba_id,
        "wamid": job.wamid,
        "media_id": job.media_id,
        "from": job.sender,
        "customer": _customer(job.customer),
        "direction": job.direction,
        "type": job.type,
        "original_message_id": job.original_message_id,
    }


def _unix(moment: Any) -> float | None:
    if not isinstance(moment, str):
        return None
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def archived_event(job: MediaJob, sidecar_doc: Mapping[str, Any], sidecar_key: str) -> Event:
    """`media.archived`: the object and its sidecar are committed. The file's facts come from
    the sidecar (also for another message bringing a media already archived: an edit), the
    message's from `job`; its time is the sidecar's `archived_at`."""
    data = {
        **_identity(job),
        "mime_type": sidecar_doc.get("mime_type", job.mime_type),
        "size": sidecar_doc.get("size"),
        "sha256": sidecar_doc.get("sha256"),
        "bucket": sidecar_doc.get("bucket"),
        "key": sidecar_doc.get("key"),
        "sidecar_key": sidecar_key,
    }
    return Event(
        "media.archived",
        job.phone_number_id,
        event_id("media.archived", job.phone_number_id, job.wamid, job.media_id),
        _unix(sidecar_doc.get("archived_at")) or float(job.received_at or job.timestamp),
        data,
    )


def failed_event(
    job: MediaJob, reason: str, code: int | None, label: str, *, at: float | None = None
) -> Event:
    """`media.failed`: the media was given up for good; `label` is the bounded reason
    (wa_media/core/reasons.py), `reason` the text, `code` the provider's error code if any."""
    data = {
        **_identity(job),
        "mime_type": job.mime_type,
        "size": None,
        "sha256": job.sha256,
        "reason": reason,
        "code": code,
        "label": label,
    }
    return Event(
        "media.failed",
        job.phone_number_id,
        event_id("media.failed", job.phone_number_id, job.wamid, job.media_id),
        time.time() if at is None else at,
        data,
    )


def skipped_event(
    job: MediaJob,
    label: str,
    detail: str,
    *,
    size: int | None = None,
    mime_type: str | None = None,
    at: float | None = None,
) -> Event:
    """`media.skipped`: the account's policy leaves the media out (`label`: policy_type,
    policy_mime, policy_size); `size` and `mime_type` as far as they were known."""
    data = {
        **_identity(job),
        "mime_type": mime_type or job.mime_type,
        "size": size,
        "sha256": job.sha256,
        "reason": detail,
        "code": None,
        "label": label,
    }
    return Event(
        "media.skipped",
        job.phone_number_id,
        event_id("media.skipped", job.phone_number_id, job.wamid, job.media_id),
        time.time() if at is None else at,
        data,
    )


def too_large_event(
    phone_number_id: str,
    waba_id: str | None,
    wamid: str,
    customer: Customer | None,
    *,
    at: float,
) -> Event:
    """`media.failed` with code 131052: a customer's file never reached WhatsApp, and the
    account sends no warning of its own (TOO_LARGE_REPLY off): its consumers may. No media id:
    there is no media."""
    data = {
        "phone_number_id": phone_number_id,
        "waba_id": waba_id,
        "wamid": wamid,
        "media_id": None,
        "from": customer.phone if customer else None,
        "customer": _customer(customer),
        "direction": "inbound",
        "type": None,
        "original_message_id": None,
        "mime_type": None,
        "size": None,
        "sha256": None,
        "reason": _TOO_LARGE_REASON,
        "code": TOO_LARGE_CODE,
        "label": TOO_LARGE_LABEL,
    }
    return Event(
        "media.failed",
        phone_number_id,
        event_id("media.failed", phone_number_id, wamid, ""),
        at,
        data,
    )
