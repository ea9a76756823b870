"""Handing a request's work to the broker in one publish."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from webhook.payload import ParsedPayload
from worker.celery_app import FAN_OUT_TASK, MEDIA_QUEUE
from worker.errors import StorageError
from worker.state import MediaStateStore, ReplyLedger, SkippedLog

__all__ = ["BrokerUnavailable", "Publisher"]


class BrokerUnavailable(Exception):
    """The broker did not take the work: the request must not be answered 200."""


class Publisher:
    """Records a request's media and replies, then publishes one fan-out task carrying all its
    jobs."""

    def __init__(self, celery: Celery, state: MediaStateStore, ledger: ReplyLedger) -> None:
        self._celery = celery
        self._state = state
        self._ledger = ledger

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

    def publish(self, parsed: ParsedPayload) -> str | None:
        """Publish the request's jobs as one message; return its task id (None if no jobs)."""
        if not parsed.media and not parsed.replies:
            return None
        batch = {
            "media": [job.to_wire() for job in parsed.media],
            "replies": [job.to_wire() for job in parsed.replies],
        }
        try:
            # Recorded first: should the fan-out be lost with the worker holding it (or be
            # refused by a worker of an older release), the sweep still finds this work.
            if parsed.media:
                self._state.admit_many(parsed.media)
            self._ledger.admit_many(parsed.replies)
            result = self._celery.send_task(
                FAN_OUT_TASK,
                args=[batch],
                queue=MEDIA_QUEUE,
                # Celery would otherwise render the whole batch with saferepr for the message's
                # headers (a tenth of the publish, more for ten media), customers' numbers
                # included: a count says enough.
                argsrepr=f"({len(parsed.media)} media, {len(parsed.replies)} replies)",
                kwargsrepr="{}",
                ignore_result=True,
                # Published to the default exchange with the queue's name as routing key, the
                # message goes straight into the queue's list: kombu's binding table, which
                # declaring the queue writes and the worker writes on start, is never read on
                # this path, and checking the declaration cache costs a twentieth of a publish.
                declare=(),
            )
        except (StorageError, OperationalError, KombuError, RedisError, OSError) as exc:
            raise BrokerUnavailable(f"broker did not accept the batch: {exc}") from exc
        return str(result.id)
