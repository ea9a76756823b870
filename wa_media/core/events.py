"""Archive events: what a consumer endpoint is told about a media (docs/consuming-the-archive.md).

Pure: an `Event` is built from what the worker knows (the job, the sidecar, the reason it gave
up) and handed to an `EventSink` (wa_media/core/ports.py), which delivers it durably. Its id is
stable: the same media's same outcome always has the same id, so a consumer deduplicates
redeliveries, and a worker that archives a media again after a crash sends no new event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EVENT_TYPES", "Event", "EventType", "event_id"]

EventType = Literal["media.archived", "media.failed", "media.skipped"]
EVENT_TYPES: tuple[EventType, ...] = ("media.archived", "media.failed", "media.skipped")


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
