"""The Celery tasks, each with its delivery and retry policy stated where it is declared."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from celery.signals import worker_init
from kombu.exceptions import KombuError
from pydantic import ValidationError
from redis import Redis

from worker.archive import Archiver
from worker.backoff import next_countdown
from worker.celery_app import (
    ARCHIVE_TASK,
    FAN_OUT_TASK,
    MAX_COUNTDOWN,
    MEDIA_QUEUE,
    REPLIES_QUEUE,
    REPLY_TASK,
    app,
)
from worker.config import WorkerSettings
from worker.env import ConfigError
from worker.errors import (
    ArchiveError,
    CredentialsError,
    PermanentError,
    RetryableError,
    StorageError,
    TemporaryError,
)
from worker.graph import GraphClient
from worker.jobs import MediaJob, ReplyJob
from worker.logs import configure_logging, get_logger, register_secrets
from worker.replies import Replier
from worker.state import MediaStateStore, ReplyLedger
from worker.storage import ArchiveStore, make_s3_client

__all__ = ["archive_media", "fan_out", "send_reply"]

log = get_logger(__name__)

ARCHIVE_MAX_RETRIES = 20
REPLY_MAX_RETRIES = 10
RETRY_BASE = 2.0
# An operator has to fix a rejected token: ask again every few minutes, not every few seconds.
CREDENTIALS_RETRY = 300.0


@functools.cache
def settings() -> WorkerSettings:
    """The worker's settings, read once."""
    return WorkerSettings.from_env()


@worker_init.connect
def _validate_at_start(**_: Any) -> None:
    configure_logging()
    try:
        loaded = settings()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr, flush=True)
        # Celery swallows exceptions from signal handlers; leave with a clear status instead.
        os._exit(2)
    register_secrets([loaded.access_token])


@dataclass(frozen=True)
class Services:
    """The clients of one worker process, built after fork so no socket is shared."""

    archiver: Archiver
    replier: Replier
    state: MediaStateStore


@functools.cache
def _services_for(pid: int) -> Services:
    config = settings()
    register_secrets([config.access_token])
    redis = Redis.from_url(config.redis_url, socket_connect_timeout=5, socket_timeout=10)
    graph = GraphClient.create(config)
    state = MediaStateStore(redis)
    store = ArchiveStore(make_s3_client(config.s3_endpoint_url), config.s3_bucket)
    return Services(
        archiver=Archiver(config, graph, store, state),
        replier=Replier(config, graph, ReplyLedger(redis)),
        state=state,
    )


def services() -> Services:
    """This process's clients."""
    return _services_for(os.getpid())


def _countdown(task: Task[Any, Any], exc: RetryableError) -> float:
    if isinstance(exc, CredentialsError):
        log.error("access_token_rejected", reason=exc.reason)
        return CREDENTIALS_RETRY
    return next_countdown(
        task.request.retries, base=RETRY_BASE, cap=MAX_COUNTDOWN, retry_after=exc.retry_after
    )


@app.task(
    name=FAN_OUT_TASK,
    bind=True,
    # Acknowledged only once every job is published: a crash re-runs the whole fan-out, and
    # the per-media records make the second run harmless.
    acks_late=True,
    max_retries=None,
)
def fan_out(self: Task[Any, Any], batch: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Split one webhook's batch into an archive task per media and a reply task per 131052."""
    state = services().state
    counts = {"media": 0, "duplicates": 0, "replies": 0, "invalid": 0}
    try:
        for raw in batch.get("media", []):
            try:
                job = MediaJob.model_validate(raw)
            except ValidationError:
                counts["invalid"] += 1
                log.error("job_invalid", task_id=self.request.id, kind="media")
                continue
            if state.mark_queued(job.media_id, job.wamid):
                archive_media.apply_async(args=(raw,), queue=MEDIA_QUEUE)
                counts["media"] += 1
            else:
                counts["duplicates"] += 1
        for raw in batch.get("replies", []):
            send_reply.apply_async(args=(raw,), queue=REPLIES_QUEUE)
            counts["replies"] += 1
    except (StorageError, OSError, KombuError) as exc:
        # Not acknowledged: the whole batch runs again, and the records skip what was done.
        raise self.retry(countdown=next_countdown(self.request.retries, base=1, cap=60)) from exc
    log.info("fanned_out", task_id=self.request.id, **counts)
    return counts


@app.task(name=ARCHIVE_TASK, bind=True, acks_late=True, max_retries=ARCHIVE_MAX_RETRIES)
def archive_media(self: Task[Any, Any], raw: dict[str, Any]) -> str:
    """Archive one media; retry what can succeed later, record what cannot."""
    job = MediaJob.model_validate(raw)
    context = {"media_id": job.media_id, "wamid": job.wamid, "task_id": self.request.id}
    state = services().state
    try:
        try:
            outcome = services().archiver.archive(job)
        except SoftTimeLimitExceeded:
            raise TemporaryError("task ran past its soft time limit") from None
        except ArchiveError:
            raise
        except Exception as exc:
            # A failure nobody classified yet: retrying is safe, dropping the media is not.
            log.exception("media_unexpected_error", **context)
            raise TemporaryError(f"unexpected {type(exc).__name__}") from None
    except PermanentError as exc:
        state.mark_failed(job.media_id, exc.reason)
        log.error("media_failed", reason=exc.reason, code=exc.code, **context)
        return "failed"
    except RetryableError as exc:
        return _retry_or_give_up(
            self,
            exc,
            "media",
            context,
            give_up=lambda reason: state.mark_failed(job.media_id, reason),
            record=lambda reason: state.record_error(job.media_id, reason),
        )
    log.info("media_" + outcome, **context)
    return outcome


def _retry_or_give_up(
    task: Task[Any, Any],
    exc: RetryableError,
    event: str,
    context: dict[str, Any],
    give_up: Callable[[str], None],
    record: Callable[[str], None] | None = None,
) -> str:
    """Schedule the next try, or, past the task's max_retries, record the failure."""
    # A rejected token is the operator's to fix; it must not use up the media's tries.
    out_of_tries = task.request.retries >= (task.max_retries or 0)
    if out_of_tries and not isinstance(exc, CredentialsError):
        reason = f"gave up after {task.request.retries + 1} tries: {exc.reason}"
        give_up(reason)
        log.error(f"{event}_failed", reason=reason, **context)
        return "failed"
    countdown = _countdown(task, exc)
    if record is not None:
        record(exc.reason)
    log.warning(
        f"{event}_retry",
        reason=exc.reason,
        error=type(exc).__name__,
        countdown=round(countdown, 1),
        retries=task.request.retries,
        **context,
    )
    raise task.retry(
        countdown=countdown, exc=exc, max_retries=None if out_of_tries else task.max_retries
    )


@app.task(name=REPLY_TASK, bind=True, acks_late=True, max_retries=REPLY_MAX_RETRIES)
def send_reply(self: Task[Any, Any], raw: dict[str, Any]) -> str:
    """Warn a customer that their file was too big, once per wamid."""
    job = ReplyJob.model_validate(raw)
    context = {
        "wamid": job.wamid,
        "phone_number_id": job.phone_number_id,
        "task_id": self.request.id,
    }
    try:
        outcome = services().replier.reply(job)
    except PermanentError as exc:
        log.error("reply_failed", reason=exc.reason, code=exc.code, **context)
        return "failed"
    except RetryableError as exc:
        return _retry_or_give_up(self, exc, "reply", context, give_up=lambda _reason: None)
    log.info("reply_" + outcome, **context)
    return outcome
