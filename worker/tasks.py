"""The Celery tasks, each with its delivery and retry policy stated where it is declared.

The clients are worker/services.py's; the process's start-up is worker/bootstrap.py's.
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from typing import Any, TypeVar

from celery import Task
from kombu.exceptions import KombuError
from pydantic import ValidationError
from redis.exceptions import RedisError

from worker.archive import Done, Failed, RetryLater
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
from worker.clients import NoAccount
from worker.errors import (
    ArchiveError,
    CredentialsError,
    PermanentError,
    RetryableError,
    StorageError,
)
from worker.gate import PausedError
from worker.jobs import REPLY_DROP_REASONS, MediaJob, ReplyJob
from worker.logs import get_logger, since, task_context
from worker.metrics import count_task, worker_metrics
from worker.reasons import reason_of
from worker.services import Services, services
from worker.state import SWEEP_LAST_KEY, SWEEP_LAST_TTL, ReplyRef

__all__ = ["archive_media", "fan_out", "send_reply", "sweep"]

log = get_logger(__name__)

REPLY_MAX_RETRIES = 10
J = TypeVar("J", MediaJob, ReplyJob)


def _note_retry(
    task: str,
    event: str,
    exc: BaseException,
    reason: str,
    countdown: float,
    started: float,
    /,
    **fields: Any,
) -> None:
    """Count a scheduled retry and log it as `event`, with its bounded label beside `reason`."""
    label = reason_of(exc)
    count_task(task, "retried", label)
    worker_metrics().retries.labels(reason=label).inc()
    log.warning(
        event,
        reason=reason,
        reason_label=label,
        countdown=round(countdown, 1),
        duration_ms=since(started),
        **fields,
    )


def _note_failed(
    task: str, label: str, reason: str, started: float, /, code: int | None = None
) -> None:
    """Count a task given up for good and log it, with its bounded label beside `reason`."""
    count_task(task, "failed", label)
    log.error("failed", reason=reason, reason_label=label, code=code, duration_ms=since(started))


def _note_rejected(error: ArchiveError, phone_number_id: str) -> None:
    """Count a credential the provider rejected just now (not a call skipped while paused)."""
    if isinstance(error, CredentialsError) and not isinstance(error, PausedError | NoAccount):
        worker_metrics().token_rejected.labels(phone_number_id=phone_number_id).inc()


def _valid_jobs(model: type[J], raws: list[dict[str, Any]], counts: dict[str, int]) -> list[J]:
    """The jobs of a batch that validate; the others are counted and logged (kind: media,
    reply), as a worker of an older release does with jobs of a newer one."""
    valid = []
    for raw in raws:
        try:
            valid.append(model.model_validate(raw))
        except ValidationError:
            counts["invalid"] += 1
            log.error("job_invalid", kind="media" if model is MediaJob else "reply")
    return valid


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
    started = time.perf_counter()
    with task_context(task="fanout", task_id=self.request.id):
        state = services().state
        counts = {"media": 0, "duplicates": 0, "replies": 0, "invalid": 0}
        try:
            jobs = _valid_jobs(MediaJob, batch.get("media", []), counts)
            replies = _valid_jobs(ReplyJob, batch.get("replies", []), counts)
            # A no-op when `web` recorded them; not when an older `web` published this batch.
            services().replier.ledger.admit_many(replies)
            for job, admitted in zip(jobs, state.admit_many(jobs), strict=True):
                if admitted:
                    archive_media.apply_async(
                        args=(job.to_wire(),),
                        queue=MEDIA_QUEUE,
                        priority=ARCHIVE_PRIORITY,
                    )
                    counts["media"] += 1
                else:
                    counts["duplicates"] += 1
            for reply in replies:
                send_reply.apply_async(args=(reply.to_wire(),), queue=REPLIES_QUEUE)
                counts["replies"] += 1
        except (StorageError, OSError, KombuError) as exc:
            # Not acknowledged: the whole batch runs again, and the records skip what was done.
            countdown = next_countdown(self.request.retries, base=1, cap=60)
            _note_retry("fanout", "fan_out_retry", exc, str(exc), countdown, started)
            raise self.retry(countdown=countdown) from exc
        count_task("fanout", "done")
        log.info("fanned_out", duration_ms=since(started), **counts)
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
    started = time.perf_counter()
    job = MediaJob.model_validate(raw)
    with task_context(
        task="media",
        task_id=self.request.id,
        wamid=job.wamid,
        media_id=job.media_id,
        phone_number_id=job.phone_number_id,
        customer=job.customer.address if job.customer else job.sender,
        direction=job.direction,
    ):
        try:
            result = services().archiver.archive(job)
        except StorageError as exc:
            # Redis itself failed while recording the outcome: the next try starts afresh.
            countdown = next_countdown(self.request.retries, base=2, cap=60)
            _note_retry("media", "media_retry", exc, exc.reason, countdown, started)
            raise self.retry(countdown=countdown, exc=exc) from None
        match result:
            case Done("archived"):
                # The archive logged its `archived` step, with the bytes and durations.
                count_task("media", "archived")
                return "archived"
            case Done("edit_recorded"):
                count_task("media", "edit_recorded")
                return "edit_recorded"
            case Done(outcome, key):
                count_task("media", "duplicate")
                log.info("media_" + outcome, key=key, duration_ms=since(started))
                return outcome
            case Failed(reason_text, code, label):
                _note_failed("media", label, reason_text, started, code=code)
                return "failed"
            case RetryLater(countdown, error):
                _note_rejected(error, job.phone_number_id)
                _note_retry(
                    "media",
                    "media_retry",
                    error,
                    error.reason,
                    countdown,
                    started,
                    error=type(error).__name__,
                )
                raise self.retry(countdown=countdown, exc=error)
    raise AssertionError(f"unexpected result {result!r}")


@app.task(name=REPLY_TASK, bind=True, acks_late=True, max_retries=REPLY_MAX_RETRIES)
def send_reply(self: Task[Any, Any], raw: dict[str, Any]) -> str:
    """Warn a customer that their file was too big, once per wamid."""
    started = time.perf_counter()
    job = ReplyJob.model_validate(raw)
    with task_context(
        task="reply",
        task_id=self.request.id,
        wamid=job.wamid,
        phone_number_id=job.phone_number_id,
    ):
        ledger = services().replier.ledger
        member = ReplyRef.of(job).member
        try:
            outcome = services().replier.reply(job)
        except PermanentError as exc:
            _note_failed("reply", reason_of(exc), exc.reason, started, code=exc.code)
            ledger.settled(member)
            return "failed"
        except RetryableError as exc:
            _note_rejected(exc, job.phone_number_id)
            # A rejected token is the operator's to fix; it must not use up the reply's tries.
            waiting_on_token = isinstance(exc, CredentialsError)
            if (
                self.request.retries >= REPLY_MAX_RETRIES and not waiting_on_token
            ):  # we count, not Celery
                _note_failed("reply", reason_of(exc), f"gave up: {exc.reason}", started)
                ledger.settled(member)
                return "failed"
            countdown = next_countdown(
                self.request.retries, base=2, cap=MAX_COUNTDOWN, retry_after=exc.retry_after
            )
            _note_retry("reply", "reply_retry", exc, exc.reason, countdown, started)
            # The sweep leaves a warning alone while its own retry is due.
            with suppress(StorageError):
                ledger.look_again(member, time.time() + countdown + ledger.stall_after)
            raise self.retry(countdown=countdown, exc=exc, max_retries=None) from None
        ledger.settled(member)
        if outcome == "sent":
            count_task("reply", "sent")
            log.info("replied", duration_ms=since(started))
        elif outcome in REPLY_DROP_REASONS:
            # Never sent: the customer was warned lately, or the account is over its rate.
            count_task("reply", "dropped")
            worker_metrics().replies_dropped.labels(reason=outcome).inc()
            log.warning("reply_dropped", reason=outcome, duration_ms=since(started))
        else:
            count_task("reply", "duplicate")
            log.info("reply_" + outcome, duration_ms=since(started))
        return outcome


@app.task(
    name=SWEEP_TASK,
    # A lost sweep costs nothing: beat sends another within SWEEP_INTERVAL.
    acks_late=False,
    ignore_result=True,
)
def sweep() -> dict[str, int]:
    """Enqueue again the media whose worker died (lease expired) or that sat queued too long."""
    started = time.perf_counter()
    with task_context(task="sweep"):
        svc = services()
        state = svc.state
        try:
            # One sweep at a time across every worker.
            lock = state.take_sweep_lock(SWEEP_INTERVAL * 4)
            if lock is None:
                count_task("sweep", "skipped")
                return {}
            counts = {"requeued": 0, "settled": 0, "leased": 0}
            now = time.time()
            for member in state.due(now):
                ref = state.resolve(member)
                if ref is None:
                    state.forget_pending(member)  # its record (or its job) is gone
                    counts["settled"] += 1
                    continue
                # Reading it moves a record of the previous release (member `{media_id}`)
                # under its account, and its place in wa:pending to the account's member.
                record = state.get(ref)
                if ref.member != member:
                    state.forget_pending(member)
                current = record.get("state")
                if current in (None, "archived", "failed") or "job" not in record:
                    state.forget_pending(ref.member)
                    counts["settled"] += 1
                elif current == "archiving" and (remaining := state.lease_remaining(ref)):
                    # Look again right when the lease would run out, not a whole lease later.
                    state.look_again(ref.member, now + remaining + 1)
                    counts["leased"] += 1
                else:
                    archive_media.apply_async(
                        args=(json.loads(record["job"]),),
                        queue=MEDIA_QUEUE,
                        priority=RESCUE_PRIORITY,
                    )
                    state.look_again(ref.member, now + svc.archiver.settings.sweep_stalled_after)
                    counts["requeued"] += 1
                    log.warning(
                        "media_requeued",
                        media_id=ref.media_id,
                        phone_number_id=ref.phone_number_id,
                        wamid=record.get("wamid"),
                        state=current,
                        reason="lease expired" if current == "archiving" else "queued too long",
                    )
            _sweep_replies(svc, now, counts)
            svc.redis.set(SWEEP_LAST_KEY, f"{time.time():.3f}", ex=SWEEP_LAST_TTL)
            state.release_sweep_lock(lock)
        except (StorageError, RedisError, OSError, KombuError) as exc:
            count_task("sweep", "failed", reason_of(exc))
            log.warning("sweep_failed", reason=str(exc), reason_label=reason_of(exc))
            return {}
        count_task("sweep", "done")
        if counts["requeued"] or counts["replies_requeued"]:
            log.info("swept", duration_ms=since(started), **counts)
        return counts


def _sweep_replies(svc: Services, now: float, counts: dict[str, int]) -> None:
    """Send again the warnings owed whose task was lost, or refused by an older worker."""
    ledger = svc.replier.ledger
    counts["replies_requeued"] = 0
    for member, raw in ledger.due(now):
        try:
            job = None if raw is None else ReplyJob.model_validate_json(raw)
        except ValueError:
            log.error("job_invalid", kind="reply", member=member)
            job = None
        claim = None if job is None else ledger.status(ReplyRef.of(job))
        if job is None or (claim is not None and claim != "sending"):
            ledger.settled(member)  # sent, given up, dropped, or its record expired
        elif claim == "sending":
            ledger.look_again(member, now + ledger.claim_ttl)
        else:
            send_reply.apply_async(args=(job.to_wire(),), queue=REPLIES_QUEUE)
            ledger.look_again(member, now + ledger.stall_after)
            counts["replies_requeued"] += 1
            log.warning(
                "reply_requeued",
                wamid=job.wamid,
                phone_number_id=job.phone_number_id,
                reason="not sent in time",
            )
