"""Handing a request's work to the broker: recorded first, then published as fan-out tasks of at
most FANOUT_BATCH media (and as many replies) each."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from celery import Celery

from wa_media.config.variables import DEFAULT_FANOUT_BATCH, MAX_FANOUT_BATCH
from wa_media.core.delivery import Relay
from wa_media.core.errors import BrokerUnavailable, StorageError
from wa_media.core.events import Event, events_record_id
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE, send_task
from wa_media.stores.deliveries import RelayInbox
from wa_media.stores.records import MediaStateStore, ReplyLedger, SkippedLog
from webhook.payload import ParsedPayload

__all__ = ["DEFAULT_FANOUT_BATCH", "MAX_FANOUT_BATCH", "Publisher"]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class Publisher:
    """Records a request's media and replies, then publishes them as fan-out tasks of at most
    `batch_size` media and `batch_size` replies each: never fewer jobs than the request holds."""

    def __init__(
        self,
        celery: Celery,
        state: MediaStateStore,
        ledger: ReplyLedger,
        *,
        batch_size: int = DEFAULT_FANOUT_BATCH,
    ) -> None:
        if not 1 <= batch_size <= MAX_FANOUT_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_FANOUT_BATCH}")
        self._celery = celery
        self._state = state
        self._ledger = ledger
        self._inbox = RelayInbox(state.redis)
        self.batch_size = batch_size

    def note_skipped(self, parsed: ParsedPayload) -> None:
        """Remember the skipped messages that looked like media, for `wa-media skipped`; a
        Redis failure here is the broker's failure too (BrokerUnavailable)."""
        entries = [
            {
                "reason": skip.reason,
                "detail": skip.detail,
                "wamid": skip.wamid,
                "phone_number_id": skip.phone_number_id,
                "type": skip.type,
            }
            for skip in parsed.skipped
            if skip.listed
        ]
        try:
            SkippedLog(self._state.redis).add(entries)
        except StorageError as exc:
            raise BrokerUnavailable(f"skipped messages not recorded: {exc}") from exc

    def publish(self, parsed: ParsedPayload, relay: Relay | None = None) -> str | None:
        """Record every job of the request (and its relay), then publish them in fan-out tasks
        of at most `batch_size` media and replies, the relay riding the first; return the task
        ids, comma-separated (None if no jobs and no relay).

        A failure anywhere is BrokerUnavailable: the request is answered 503 and delivered
        again, and whatever was recorded or published already is admitted again harmlessly.
        """
        if not parsed.media and not parsed.replies and not parsed.events and relay is None:
            return None
        media = _chunks(parsed.media, self.batch_size) or [[]]
        replies = _chunks(parsed.replies, self.batch_size)
        # The events of what `web` decided (policy skips, a 131052 not answered) ride the same
        # fan-out, whose worker hands them to the consumers' outbox.
        events = _chunks(parsed.events, self.batch_size)
        try:
            # Every job recorded before any is published: should a fan-out be lost with the
            # worker holding it (or be refused by a worker of an older release), the sweep
            # still finds this work. One script call per batch keeps each short for Redis.
            # The relay is recorded so too: with the first media, in the same call.
            if relay is not None and not parsed.media:
                self._inbox.admit(relay)
            for i, chunk in enumerate(media):
                if chunk:
                    record = RelayInbox.record(relay) if relay is not None and i == 0 else None
                    self._state.admit_many(chunk, record)
            self._ledger.admit_many(parsed.replies)
            # And the events, each batch's under its own record.
            records = [events_record_id([event.id for event in chunk]) for chunk in events]
            for record_id, chunk in zip(records, events, strict=True):
                self._inbox.admit_events(record_id, [event.to_wire() for event in chunk])
            ids = [
                self._send(
                    media_chunk or [],
                    reply_chunk or [],
                    event_chunk or [],
                    relay if i == 0 else None,
                    events_record=records[i] if i < len(records) else None,
                )
                for i, (media_chunk, reply_chunk, event_chunk) in enumerate(
                    zip_longest(media, replies, events)
                )
            ]
        except (StorageError, BrokerUnavailable) as exc:
            raise BrokerUnavailable(f"broker did not accept the batch: {exc}") from exc
        return ",".join(ids)

    def _send(
        self,
        media: list[MediaJob],
        replies: list[ReplyJob],
        events: list[Event],
        relay: Relay | None,
        *,
        events_record: str | None = None,
    ) -> str:
        batch: dict[str, Any] = {}
        if media or replies or relay is None:
            batch["media"] = [job.to_wire() for job in media]
            batch["replies"] = [job.to_wire() for job in replies]
        if events:
            # Left out when none: a batch without events is what the previous release sent.
            batch["events"] = [event.to_wire() for event in events]
            batch["events_record"] = events_record
        if relay is not None:
            batch["relay"] = relay.to_wire()
        result = send_task(
            self._celery,
            FAN_OUT_TASK,
            args=[batch],
            queue=MEDIA_QUEUE,
            # Celery would otherwise render the whole batch with saferepr for the message's
            # headers (a tenth of the publish, more for ten media), customers' numbers
            # included: a count says enough.
            argsrepr=f"({len(media)} media, {len(replies)} replies, {relay is not None:d} relay)",
            kwargsrepr="{}",
            ignore_result=True,
            # Published to the default exchange with the queue's name as routing key, the
            # message goes straight into the queue's list: kombu's binding table, which
            # declaring the queue writes and the worker writes on start, is never read on
            # this path, and checking the declaration cache costs a twentieth of a publish.
            declare=(),
        )
        return str(result.id)
