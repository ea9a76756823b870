"""The broker's side of the contract: queues, task names, delivery limits, and the Celery
application `web` publishes with and `worker` consumes with (built by `make_celery`).

It is also the broker's adapter: every publish goes through `send_task` or `apply_async`, which
raise BrokerUnavailable where kombu (or the Redis transport under it, or the socket) fails, so
that nothing above this module catches a kombu, amqp or redis exception."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from celery import Celery, Task
from celery.result import AsyncResult
from kombu import Queue
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from wa_media.config.variables import BEAT_SCHEDULE_FILE
from wa_media.core.errors import BrokerUnavailable

__all__ = [
    "ARCHIVE_PRIORITY",
    "ARCHIVE_TASK",
    "DELIVERIES_QUEUE",
    "DELIVER_TASK",
    "FAN_OUT_TASK",
    "MAX_COUNTDOWN",
    "MEDIA_QUEUE",
    "REPLIES_QUEUE",
    "REPLY_TASK",
    "RESCUE_PRIORITY",
    "SWEEP_INTERVAL",
    "SWEEP_TASK",
    "TASK_TIME_LIMIT",
    "VISIBILITY_TIMEOUT",
    "apply_async",
    "beat_schedule_file",
    "make_celery",
    "send_task",
]

MEDIA_QUEUE = "media"
REPLIES_QUEUE = "replies"
FAN_OUT_TASK = "wa.fan_out"
ARCHIVE_TASK = "wa.archive_media"
REPLY_TASK = "wa.send_reply"
# Relayed webhooks and archive events: a queue of their own, so that a slow destination never
# holds an archive or a warning back.
DELIVERIES_QUEUE = "deliveries"
DELIVER_TASK = "wa.deliver"
SWEEP_TASK = "wa.sweep"
# Beat sends a sweep this often; with the 60 s lease, a dead worker's media is enqueued again
# at most about 75 s after it died.
SWEEP_INTERVAL = 15

# Redis serves a queue's lower priority numbers first. Fan-outs (cheap, they record the media)
# and media rescued by the sweep go first; ordinary archive tasks wait behind them, so a dead
# worker's media does not wait behind the whole backlog.
RESCUE_PRIORITY = 0
ARCHIVE_PRIORITY = 3

# A 100 MB file at a slow 200 KB/s takes about 8.5 minutes: no task may run longer than this.
TASK_TIME_LIMIT = 15 * 60
# Redis redelivers an unacknowledged task after this long, so it must outlast the longest task
# (or a running task would be handed to a second worker) ...
VISIBILITY_TIMEOUT = 60 * 60
# ... and every retry countdown must be shorter, or the waiting task is redelivered meanwhile.
MAX_COUNTDOWN = 30 * 60


def beat_schedule_file(environ: Mapping[str, str]) -> str:
    """Where beat keeps its schedule file (a shelve database, at most a few KB): the path in
    BEAT_SCHEDULE_FILE, else `wa-media-celerybeat-schedule` in the temporary directory (TMPDIR,
    or /tmp), never the working directory. Losing it only makes beat send the next sweep at
    once."""
    configured = BEAT_SCHEDULE_FILE.read_optional(environ)
    return configured or os.path.join(tempfile.gettempdir(), "wa-media-celerybeat-schedule")


def make_celery(broker_url: str) -> Celery:
    """A Celery app on `broker_url` with the service's queues and delivery guarantees."""
    app = Celery("worker", broker=broker_url, include=["worker.bootstrap", "worker.tasks"])
    transport_options = {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Fail fast when Redis is down, so `web` answers 503 within a second, not a minute.
        "socket_connect_timeout": 1,
        "socket_timeout": 5,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    app.conf.update(
        broker_transport_options=transport_options,
        # Celery reads the visibility timeout here too (result backend on Redis): keep them equal.
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        # Nothing reads task results; storing them would only fill Redis.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=(Queue(MEDIA_QUEUE), Queue(REPLIES_QUEUE), Queue(DELIVERIES_QUEUE)),
        task_default_queue=MEDIA_QUEUE,
        # The sweep rides the light queue: it must not wait behind the backlog it rescues.
        task_routes={
            REPLY_TASK: {"queue": REPLIES_QUEUE},
            DELIVER_TASK: {"queue": DELIVERIES_QUEUE},
            SWEEP_TASK: {"queue": REPLIES_QUEUE},
        },
        # `celery beat` without --schedule (the Procfile's line) reads it here.
        beat_schedule_filename=beat_schedule_file(os.environ),
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": float(SWEEP_INTERVAL),
                # Sweeps that no worker took in time are dropped, not piled up.
                "options": {"queue": REPLIES_QUEUE, "expires": float(SWEEP_INTERVAL)},
            }
        },
        # Acknowledge after the work is done, so a task whose worker dies is delivered again.
        task_acks_late=True,
        # A child killed mid-task (OOM, SIGKILL) requeues its task instead of acknowledging it.
        task_reject_on_worker_lost=True,
        # One task reserved per process: a slow download never holds others hostage.
        worker_prefetch_multiplier=1,
        # A task that runs too long is killed and retried, well before the visibility timeout.
        task_time_limit=TASK_TIME_LIMIT,
        task_soft_time_limit=TASK_TIME_LIMIT - 60,
        # Keep reconnecting forever when Redis restarts, at start-up and while running.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # After a lost connection, running acks_late tasks are redelivered; ours are idempotent.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # The webhook must answer quickly: try a publish once more, then report failure.
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        broker_channel_error_retry=True,
    )
    return app


@contextmanager
def _publishing() -> Iterator[None]:
    """Raise BrokerUnavailable where a publish fails: kombu's errors (OperationalError once its
    retries are spent), the Redis transport's, or the socket's."""
    try:
        yield
    except (KombuError, RedisError, OSError) as exc:
        raise BrokerUnavailable(f"publish failed: {type(exc).__name__}") from exc


def send_task(celery: Celery, name: str, **options: Any) -> AsyncResult[Any]:
    """Publish task `name` by its name (Celery.send_task's options); BrokerUnavailable if the
    broker does not take it."""
    with _publishing():
        return celery.send_task(name, **options)


def apply_async(task: Task[Any, Any], **options: Any) -> AsyncResult[Any]:
    """Publish a call of `task` (Task.apply_async's options); BrokerUnavailable if the broker
    does not take it."""
    with _publishing():
        return task.apply_async(**options)
