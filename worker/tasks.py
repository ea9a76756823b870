"""The Celery tasks, each with its delivery and retry policy stated where it is declared."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.concurrency import get_implementation
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.signals import worker_init
from kombu.exceptions import KombuError
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError

from worker.archive import Archiver, Done, Failed, RetryLater
from worker.backoff import next_countdown
from worker.celery_app import (
    ARCHIVE_PRIORITY,
    ARCHIVE_TASK,
    FAN_OUT_TASK,
    MAX_COUNTDOWN,
    MEDIA_QUEUE,
    REPLIES_QUEUE,
    REPLY_TASK,
    RESCUE_PRIORITY,
    SWEEP_INTERVAL,
    SWEEP_TASK,
    app,
)
from worker.clients import ClientDirectory
from worker.config import WorkerSettings
from worker.env import ConfigError
from worker.errors import CredentialsError, PermanentError, RetryableError, StorageError
from worker.jobs import MediaJob, ReplyJob
from worker.logs import get_logger, register_secrets
from worker.replies import Replier
from worker.state import MediaStateStore, ReplyLedger
from worker.storage import PARTS_IN_FLIGHT, make_s3_client

__all__ = ["archive_media", "fan_out", "send_reply", "sweep"]

log = get_logger(__name__)

REPLY_MAX_RETRIES = 10


@functools.cache
def settings() -> WorkerSettings:
    """The worker's settings, read once."""
    return WorkerSettings.from_env()


@dataclass
class _Pool:
    """What start-up tells about the pool: how many tasks one process may run at once."""

    tasks_at_once: int = 1


_POOL = _Pool()


@worker_init.connect
def _validate_at_start(sender: Any = None, **_: Any) -> None:
    try:
        loaded = settings()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr, flush=True)
        # Celery swallows exceptions from signal handlers; leave with a clear status instead.
        os._exit(2)
    register_secrets(loaded.accounts.secrets)
    if sender is not None:
        _fit_pool(sender)


def _fit_pool(worker: Any) -> None:
    """Adapt to the pool the worker starts with (`worker` is Celery's WorkController)."""
    # `--concurrency`: tasks running at once in the threads pool's one process (a prefork child
    # runs one, and its connection pools only open the connections it uses).
    _POOL.tasks_at_once = max(1, int(getattr(worker, "concurrency", 1) or 1))
    if issubclass(get_implementation(worker.pool_cls), (ThreadPool, SoloPool)):
        # A thread cannot be killed: cancelling the running tasks when Redis goes away raises
        # NotImplementedError (kill_job) and the worker dies at every Redis restart. The tasks
        # run on instead; their messages come back once Redis does, and the media's lease keeps
        # the copy from working on it at the same time.
        worker.app.conf.worker_cancel_long_running_tasks_on_connection_loss = False


@dataclass(frozen=True)
class Services:
    """The clients of one worker process, built after fork so no socket is shared, and shared
    by the process's threads: the Redis client, the S3 client and each provider's session are
    thread-safe, with a connection pool sized for the tasks that run at once."""

    archiver: Archiver
    replier: Replier
    state: MediaStateStore
    redis: Redis


_services: dict[int, Services] = {}
# Building clients takes a while and boto3's default session must not be used by two threads at
# once: the first tasks of a threads pool wait for one build instead of racing to make many.
_services_lock = threading.Lock()


def _build_services() -> Services:
    config = settings()
    register_secrets(config.accounts.secrets)
    connections = _POOL.tasks_at_once
    redis = Redis.from_url(config.redis_url, socket_connect_timeout=5, socket_timeout=10)
    # A large file's upload sends PARTS_IN_FLIGHT parts at once.
    s3 = make_s3_client(config.s3_endpoint_url, max_connections=connections * PARTS_IN_FLIGHT)
    clients = ClientDirectory(config, redis, s3, pool_size=connections)
    state = MediaStateStore(
        redis, stall_after=config.sweep_stalled_after, lease_ttl=config.lease_seconds
    )
    return Services(
        archiver=Archiver(config, clients, state),
        replier=Replier(config, clients, ReplyLedger(redis)),
        state=state,
        redis=redis,
    )


def services() -> Services:
    """This process's clients."""
    pid = os.getpid()
    found = _services.get(pid)
    if found is None:
        with _services_lock:
            found = _services.get(pid) or _build_services()
            _services[pid] = found
    return found


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
        jobs = []
        for raw in batch.get("media", []):
            try:
                jobs.append(MediaJob.model_validate(raw))
            except ValidationError:
                counts["invalid"] += 1
                log.error("job_invalid", task_id=self.request.id, kind="media")
        for job, admitted in zip(jobs, state.admit_many(jobs), strict=True):
            if admitted:
                archive_media.apply_async(
                    args=(job.model_dump(mode="json"),),
                    queue=MEDIA_QUEUE,
                    priority=ARCHIVE_PRIORITY,
                )
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


@app.task(
    name=ARCHIVE_TASK,
    bind=True,
    acks_late=True,
    # The media's 7-day deadline bounds its tries (worker/policy.py), not a count.
    max_retries=None,
)
def archive_media(self: Task[Any, Any], raw: dict[str, Any]) -> str:
    """Archive one media; retry what can succeed later, record what cannot."""
    job = MediaJob.model_validate(raw)
    context = {"media_id": job.media_id, "wamid": job.wamid, "task_id": self.request.id}
    try:
        result = services().archiver.archive(job)
    except StorageError as exc:
        # Redis itself failed while recording the outcome: the next try starts afresh.
        countdown = next_countdown(self.request.retries, base=2, cap=60)
        log.warning("media_retry", reason=exc.reason, countdown=round(countdown, 1), **context)
        raise self.retry(countdown=countdown, exc=exc) from None
    match result:
        case Done(outcome, key):
            log.info("media_" + outcome, key=key, **context)
            return outcome
        case Failed(reason, code):
            log.error("media_failed", reason=reason, code=code, **context)
            return "failed"
        case RetryLater(countdown, error):
            log.warning(
                "media_retry",
                reason=error.reason,
                error=type(error).__name__,
                countdown=round(countdown, 1),
                **context,
            )
            raise self.retry(countdown=countdown, exc=error)
    raise AssertionError(f"unexpected result {result!r}")


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
        # A rejected token is the operator's to fix; it must not use up the reply's tries.
        waiting_on_token = isinstance(exc, CredentialsError)
        if (
            self.request.retries >= REPLY_MAX_RETRIES and not waiting_on_token
        ):  # we count, not Celery
            log.error("reply_failed", reason=f"gave up: {exc.reason}", **context)
            return "failed"
        countdown = next_countdown(
            self.request.retries, base=2, cap=MAX_COUNTDOWN, retry_after=exc.retry_after
        )
        log.warning("reply_retry", reason=exc.reason, countdown=round(countdown, 1), **context)
        raise self.retry(countdown=countdown, exc=exc, max_retries=None) from None
    log.info("reply_" + outcome, **context)
    return outcome


@app.task(
    name=SWEEP_TASK,
    # A lost sweep costs nothing: beat sends another within SWEEP_INTERVAL.
    acks_late=False,
    ignore_result=True,
)
def sweep() -> dict[str, int]:
    """Enqueue again the media whose worker died (lease expired) or that sat queued too long."""
    svc = services()
    state = svc.state
    try:
        # One sweep at a time across every worker.
        if not svc.redis.set("wa:sweep-lock", "1", nx=True, ex=SWEEP_INTERVAL * 4):
            return {}
        counts = {"requeued": 0, "settled": 0, "leased": 0}
        now = time.time()
        for media_id in state.due(now):
            record = state.get(media_id)
            current = record.get("state")
            if current in (None, "archived", "failed") or "job" not in record:
                state.forget_pending(media_id)
                counts["settled"] += 1
            elif current == "archiving" and (remaining := state.lease_remaining(media_id)):
                # Look again right when the lease would run out, not a whole lease later.
                state.look_again(media_id, now + remaining + 1)
                counts["leased"] += 1
            else:
                archive_media.apply_async(
                    args=(json.loads(record["job"]),), queue=MEDIA_QUEUE, priority=RESCUE_PRIORITY
                )
                state.look_again(media_id, now + svc.archiver.settings.sweep_stalled_after)
                counts["requeued"] += 1
                log.warning(
                    "media_requeued",
                    media_id=media_id,
                    wamid=record.get("wamid"),
                    state=current,
                    reason="lease expired" if current == "archiving" else "queued too long",
                )
        svc.redis.delete("wa:sweep-lock")
    except (StorageError, RedisError, OSError, KombuError) as exc:
        log.warning("sweep_failed", reason=str(exc))
        return {}
    if counts["requeued"]:
        log.info("swept", **counts)
    return counts
