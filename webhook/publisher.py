"""Handing a request's work to the broker in one publish."""

from __future__ import annotations

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from webhook.payload import ParsedPayload
from worker.celery_app import FAN_OUT_TASK, MEDIA_QUEUE
from worker.errors import StorageError
from worker.state import MediaStateStore

__all__ = ["BrokerUnavailable", "Publisher"]


class BrokerUnavailable(Exception):
    """The broker did not take the work: the request must not be answered 200."""


class Publisher:
    """Records a request's media, then publishes one fan-out task carrying all its jobs."""

    def __init__(self, celery: Celery, state: MediaStateStore) -> None:
        self._celery = celery
        self._state = state

    def publish(self, parsed: ParsedPayload) -> str | None:
        """Publish the request's jobs as one message; return its task id (None if no jobs)."""
        if not parsed.media and not parsed.replies:
            return None
        batch = {
            "media": [job.model_dump(mode="json") for job in parsed.media],
            "replies": [job.model_dump(mode="json") for job in parsed.replies],
        }
        try:
            # Recorded first: should the fan-out be lost with the worker holding it, the sweep
            # still finds these media and enqueues them.
            if parsed.media:
                self._state.admit_many(parsed.media)
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
