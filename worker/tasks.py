"""The Celery tasks, each with its delivery and retry policy stated where it is declared.

What every run shares (its log context, its timing, its counts and log lines of how it ended)
is worker/instrumented.py's; the clients are worker/services.py's; the process's start-up is
worker/bootstrap.py's.
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError

from wa_media.core.backoff import Backoff
from wa_media.core.delivery import Relay
from wa_media.core.errors import (
    ArchiveError,
    BrokerUnavailable,
    CredentialsError,
    NoAccount,
    PausedError,
    PermanentError,
    RetryableError,
    StorageError,
)
from wa_media.core.events import EVENTS_RECORD_PREFIX, Event
from wa_media.core.jobs import REPLY_DROP_REASONS, MediaJob, ReplyJob
from wa_media.core.keys import SWEEP_LAST_KEY
from wa_media.core.reasons import reason_of
from wa_media.core.records import ReplyRef
from wa_media.core.sweep import media_step, reply_step
from wa_media.observability.logs import get_logger
from wa_media.observability.metrics import count_task, worker_metrics
from wa_media.stores.broker import (
    ARCHIVE_PRIORITY,
    ARCHIVE_TASK,
    DELIVER_TASK,
    DELIVERIES_QUEUE,
    FAN_OUT_TASK,
    MAX_COUNTDOWN,
    MEDIA_QUEUE,
    REPLIES_QUEUE,
    REPLY_TASK,
    RESCUE_PRIORITY,
    SWEEP_INTERVAL,
    SWEEP_TASK,
    apply_async,
)
from wa_media.stores.records import SWEEP_LAST_TTL
from worker.archive import Done, Failed, RetryLater, Skipped
from worker.celery_app import app
from worker.instrumented import InstrumentedTask
from worker.services import Services, services, settings

__all__ = ["archive_media", "deliver", "fan_out", "send_reply", "sweep"]

log = get_logger(__name__)

REPLY_MAX_RETRIES = 10
J = TypeVar("J", MediaJob, ReplyJob)


def _count_rejected_token(error: ArchiveError, phone_number_id: str) -> None:
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


def _valid_events(raws: list[dict[str, Any]], counts: dict[str, int]) -> list[Event]:
    """The events of a batch (`web`'s decisions) that read back; the others counted as invalid
    and logged."""
    valid = []
    for raw in raws:
        try:
            valid.append(Event.from_wire(raw))
        except ValueError:
            counts["invalid"] += 1
            log.error("job_invalid", kind="event")
    return valid


@app.task(
    base=InstrumentedTask,
    name=FAN_OUT_TASK,
    bind=True,
    # Acknowledged only once every job is published: a crash re-runs the whole fan-out, and
    # the per-media records make the second run harmless.
    acks_late=True,
    max_retries=None,
    short_name="fanout",
    retry_event="fan_out_retry",
    backoff=Backoff(base=1, cap=60),
)
def fan_out(self: InstrumentedTask, batch: dict[str, Any]) -> dict[str, int]:
    """Split one webhook's batch into an archive task per media and a reply task per 131052,
    hand the events `web` decided (policy skips, a 131052 not answered) to the outbox, and hold
    its relay for its destinations."""
    state = services().state
    counts = {"media": 0, "duplicates": 0, "replies": 0, "events": 0, "invalid": 0}
    try:
        jobs = _valid_jobs(MediaJob, batch.get("media", []), counts)
        replies = _valid_jobs(ReplyJob, batch.get("replies", []), counts)
        # Batches of the previous release have none. Emitted again harmlessly (by their ids)
        # when the batch runs again.
        for event in _valid_events(batch.get("events", []), counts):
            services().events.emit(event)
            counts["events"] += 1
        if isinstance(batch.get("events_record"), str):
            # Emitted: `web`'s record of them has nothing more to rescue.
            services().inbox.held(batch["events_record"])
        # A no-op when `web` recorded them; not when an older `web` published this batch.
        services().replier.ledger.admit_many(replies)
        for job, admitted in zip(jobs, state.admit_many(jobs), strict=True):
            if admitted:
                apply_async(
                    archive_media,
                    args=(job.to_wire(),),
                    queue=MEDIA_QUEUE,
                    priority=ARCHIVE_PRIORITY,
                )
                counts["media"] += 1
            else:
                counts["duplicates"] += 1
        for reply in replies:
            apply_async(send_reply, args=(reply.to_wire(),), queue=REPLIES_QUEUE)
            counts["replies"] += 1
        # A member of this release (older batches have none).
        if "relay" in batch:
            _hold_relay(batch["relay"], counts)
    except (StorageError, BrokerUnavailable) as exc:
        # Not acknowledged: the whole batch runs again, and the records skip what was done.
        self.retry_in(self.next_countdown(), exc, attach=False)
    self.done("done", "fanned_out", **counts)
    return counts


def _hold_relay(raw: Any, counts: dict[str, int]) -> None:
    """Hold a webhook's body once and make a delivery per destination of its accounts."""
    svc = services()
    try:
        relay = Relay.from_wire(raw)
    except ValueError as exc:
        counts["invalid"] += 1
        log.error("job_invalid", kind="relay", error=str(exc))
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
            # Its record would bring it back at every sweep, as unreadable each time.
            svc.inbox.forget(raw["id"])
        return
    destinations = settings().accounts.relay_destinations(list(relay.numbers))
    hold = svc.deliveries.hold(relay, [d.name for d in destinations])
    for ident, _ in hold.pending:
        apply_async(deliver, args=(ident,), queue=DELIVERIES_QUEUE)
    for ident, name in hold.dead:
        worker_metrics().deliveries.dead_letters.labels(
            destination=name, reason="held_bytes_cap"
        ).inc()
        log.error(
            "delivery_dead_letter",
            delivery_id=ident,
            destination=name,
            kind="relay",
            reason="held_bytes_cap",
            detail="RELAY_HELD_BYTES_MAX reached: the body is not held",
            size=len(relay.body),
        )
    svc.inbox.held(relay.id)
    counts["relayed"] = len(hold.pending)


@app.task(
    base=InstrumentedTask,
    name=DELIVER_TASK,
    bind=True,
    acks_late=True,
    # A delivery's maximum age (DELIVERY_MAX_AGE) bounds its tries, not a count.
    max_retries=None,
    short_name="deliver",
    retry_event="delivery_retry",
    # When Redis itself fails; the delivery's own retries follow wa_media/core/delivery.py.
    backoff=Backoff(base=2, cap=60),
)
def deliver(self: InstrumentedTask, ident: str) -> str:
    """One attempt to deliver a relayed webhook or an archive event to its destination."""
    self.bind_log(delivery_id=ident)
    try:
        outcome = services().deliverer.deliver(ident)
    except (StorageError, BrokerUnavailable) as exc:
        self.retry_in(self.next_countdown(), exc, attach=False)
    if outcome.action == "retry":
        count_task(self.short_name, "retried", outcome.reason)
        log.warning(
            self.retry_event,
            reason=outcome.detail,
            reason_label=outcome.reason,
            countdown=round(outcome.countdown, 1),
            duration_ms=self.elapsed_ms(),
        )
        raise self.retry(countdown=outcome.countdown) from None
    if outcome.action == "paused":
        # Its destination is paused: no call, wait for the pause's end.
        count_task(self.short_name, "paused")
        raise self.retry(countdown=outcome.countdown) from None
    if outcome.action == "dead":
        self.failed(outcome.reason, outcome.detail or outcome.reason, event="delivery_failed")
        return "dead"
    self.done(outcome.action)
    return outcome.action


@app.task(
    base=InstrumentedTask,
    name=ARCHIVE_TASK,
    bind=True,
    acks_late=True,
    # The media's 7-day deadline bounds its tries (wa_media/core/policy.py), not a count.
    max_retries=None,
    short_name="media",
    retry_event="media_retry",
    # When Redis itself fails; the archive's own retries follow wa_media/core/policy.py.
    backoff=Backoff(base=2, cap=60),
)
def archive_media(self: InstrumentedTask, raw: dict[str, Any]) -> str:
    """Archive one media; retry what can succeed later, record what cannot."""
    job = MediaJob.model_validate(raw)
    self.bind_log(
        wamid=job.wamid,
        media_id=job.media_id,
        phone_number_id=job.phone_number_id,
        customer=job.customer.address if job.customer else job.sender,
        direction=job.direction,
    )
    try:
        result = services().archiver.archive(job)
    except (StorageError, BrokerUnavailable) as exc:
        # Redis itself failed while recording the outcome, or the outbox did not take its
        # event: the next try starts afresh, and emits the event of a media settled meanwhile.
        self.retry_in(self.next_countdown(), exc)
    match result:
        case Done("archived"):
            # The archive logged its `archived` step, with the bytes and durations.
            self.done("archived")
            return "archived"
        case Done("edit_recorded"):
            self.done("edit_recorded")
            return "edit_recorded"
        case Done(outcome, key):
            self.done("duplicate", "media_" + outcome, key=key)
            return outcome
        case Failed(reason_text, code, label):
            self.failed(label, reason_text, code=code)
            return "failed"
        case Skipped(reason_text, label):
            # Not a failure: the account's policy leaves it out (wa-media skipped lists it).
            count_task(self.short_name, "skipped", label)
            log.warning("media_skipped", reason=reason_text, reason_label=label)
            return "skipped"
        case RetryLater(countdown, error):
            _count_rejected_token(error, job.phone_number_id)
            self.retry_in(countdown, error, error=type(error).__name__)
    raise AssertionError(f"unexpected result {result!r}")


@app.task(
    base=InstrumentedTask,
    name=REPLY_TASK,
    bind=True,
    acks_late=True,
    # Unbounded for Celery: the body counts the tries itself (REPLY_MAX_RETRIES), except while
    # the token is rejected, which must not use them up; Celery's own bound would end those.
    max_retries=None,
    short_name="reply",
    retry_event="reply_retry",
    backoff=Backoff(base=2, cap=MAX_COUNTDOWN),
)
def send_reply(self: InstrumentedTask, raw: dict[str, Any]) -> str:
    """Warn a customer that their file was too big, once per wamid."""
    job = ReplyJob.model_validate(raw)
    self.bind_log(wamid=job.wamid, phone_number_id=job.phone_number_id)
    ledger = services().replier.ledger
    member = ReplyRef.of(job).member
    try:
        outcome = services().replier.reply(job)
    except PermanentError as exc:
        self.failed(reason_of(exc), exc.reason, code=exc.code)
        ledger.settled(member)
        return "failed"
    except RetryableError as exc:
        _count_rejected_token(exc, job.phone_number_id)
        # A rejected token is the operator's to fix; it must not use up the reply's tries.
        waiting_on_token = isinstance(exc, CredentialsError)
        if self.request.retries >= REPLY_MAX_RETRIES and not waiting_on_token:  # we count
            self.failed(reason_of(exc), f"gave up: {exc.reason}", code=None)
            ledger.settled(member)
            return "failed"
        countdown = self.next_countdown(retry_after=exc.retry_after)
        self.note_retry(exc, countdown)
        # The sweep leaves a warning alone while its own retry is due.
        with suppress(StorageError):
            ledger.look_again(member, time.time() + countdown + ledger.stall_after)
        raise self.retry(countdown=countdown, exc=exc) from None
    ledger.settled(member)
    if outcome == "sent":
        self.done("sent", "replied")
    elif outcome in REPLY_DROP_REASONS:
        # Never sent: the customer was warned lately, or the account is over its rate.
        worker_metrics().replies_dropped.labels(reason=outcome).inc()
        self.done("dropped", "reply_dropped", "warning", reason=outcome)
    else:
        self.done("duplicate", "reply_" + outcome)
    return outcome


@app.task(
    base=InstrumentedTask,
    name=SWEEP_TASK,
    bind=True,
    # A lost sweep costs nothing: beat sends another within SWEEP_INTERVAL.
    acks_late=False,
    ignore_result=True,
    short_name="sweep",
    # Beat's sweeps are not told apart in the logs.
    bind_task_id=False,
)
def sweep(self: InstrumentedTask) -> dict[str, int]:
    """Enqueue again the media whose worker died (lease expired) or that sat queued too long."""
    svc = services()
    state = svc.state
    try:
        # One sweep at a time across every worker.
        lock = state.take_sweep_lock(SWEEP_INTERVAL * 4)
        if lock is None:
            self.done("skipped")
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
            try:
                record = state.get(ref)
            except ValueError as exc:
                # A state no release writes: said once per SWEEP_STALLED_AFTER, never a stalled
                # sweep; an operator reads the record (`wa-media failed` skips it too).
                log.error("record_invalid", member=member, error=str(exc))
                state.look_again(member, now + svc.archiver.settings.sweep_stalled_after)
                continue
            if ref.member != member:
                state.forget_pending(member)
            step = media_step(
                record,
                now=now,
                lease_remaining=partial(state.lease_remaining, ref),
                stalled_after=svc.archiver.settings.sweep_stalled_after,
            )
            if step.action == "settle" or record.job is None:
                state.forget_pending(ref.member)
                counts["settled"] += 1
            elif step.action == "leased":
                state.look_again(ref.member, step.look_again_at or now)
                counts["leased"] += 1
            else:
                apply_async(
                    archive_media,
                    args=(json.loads(record.job),),
                    queue=MEDIA_QUEUE,
                    priority=RESCUE_PRIORITY,
                )
                state.look_again(ref.member, step.look_again_at or now)
                counts["requeued"] += 1
                log.warning(
                    "media_requeued",
                    media_id=ref.media_id,
                    phone_number_id=ref.phone_number_id,
                    wamid=record.wamid,
                    state=record.state,
                    reason=step.reason,
                )
        _sweep_replies(svc, now, counts)
        _sweep_deliveries(svc, now, counts)
        svc.redis.set(SWEEP_LAST_KEY, f"{time.time():.3f}", ex=SWEEP_LAST_TTL)
        state.release_sweep_lock(lock)
    except (StorageError, BrokerUnavailable) as exc:
        self.failed(reason_of(exc), str(exc), event="sweep_failed", level="warning", timed=False)
        return {}
    # Logged only when it sent something again: beat sweeps every SWEEP_INTERVAL.
    requeued = counts["requeued"] or counts["replies_requeued"] or counts["deliveries_requeued"]
    self.done("done", "swept" if requeued or counts["relays_requeued"] else None, **counts)
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
        try:
            entry = None if job is None else ledger.status(ReplyRef.of(job))
        except ValueError as exc:
            # A value no release writes: settled, as every value but `sending` is to a claim.
            log.error("record_invalid", kind="reply", member=member, error=str(exc))
            ledger.settled(member)
            continue
        step = reply_step(
            job, entry, now=now, claim_ttl=ledger.claim_ttl, stall_after=ledger.stall_after
        )
        if step.action == "settle" or job is None:
            ledger.settled(member)  # sent, given up, dropped, or its record expired
        elif step.action == "wait":
            ledger.look_again(member, step.look_again_at or now)
        else:
            apply_async(send_reply, args=(job.to_wire(),), queue=REPLIES_QUEUE)
            ledger.look_again(member, step.look_again_at or now)
            counts["replies_requeued"] += 1
            log.warning(
                "reply_requeued",
                wamid=job.wamid,
                phone_number_id=job.phone_number_id,
                reason="not sent in time",
            )


def _sweep_deliveries(svc: Services, now: float, counts: dict[str, int]) -> None:
    """Publish again the deliveries whose task was lost (a worker killed while holding it) and
    the relays whose fan-out was; give back the bytes of bodies that expired."""
    state = svc.deliveries
    counts["deliveries_requeued"] = 0
    counts["relays_requeued"] = 0
    for ident in state.due(now):
        try:
            record = state.get(ident)
        except ValueError as exc:
            log.error("record_invalid", kind="delivery", delivery_id=ident, error=str(exc))
            state.forget(ident)
            continue
        if record is None or record.state != "pending":
            state.forget(ident)
            continue
        apply_async(deliver, args=(ident,), queue=DELIVERIES_QUEUE)
        state.look_again(ident, now + state.stall_after)
        counts["deliveries_requeued"] += 1
        log.warning(
            "delivery_requeued",
            delivery_id=ident,
            destination=record.destination,
            reason="not settled in time",
        )
    for relay_id, member in svc.inbox.stalled(now - state.stall_after):
        if member is None:
            svc.inbox.forget(relay_id)
            continue
        if relay_id.startswith(EVENTS_RECORD_PREFIX):
            # Events `web` decided whose fan-out was lost (or ignored by an older worker).
            events = member.get("events", []) if isinstance(member, dict) else []
            apply_async(
                fan_out,
                args=({"events": events, "events_record": relay_id},),
                queue=MEDIA_QUEUE,
                priority=RESCUE_PRIORITY,
                argsrepr=f"(0 media, 0 replies, {len(events)} events)",
                kwargsrepr="{}",
            )
            svc.inbox.look_again(relay_id, now)
            counts["events_requeued"] = counts.get("events_requeued", 0) + 1
            log.warning("events_requeued", record=relay_id, reason="not emitted in time")
            continue
        apply_async(
            fan_out,
            args=({"relay": member},),
            queue=MEDIA_QUEUE,
            priority=RESCUE_PRIORITY,
            # Not the body and signature in the message's headers: a count says enough.
            argsrepr="(0 media, 0 replies, 1 relay)",
            kwargsrepr="{}",
        )
        svc.inbox.look_again(relay_id, now)
        counts["relays_requeued"] += 1
        log.warning("relay_requeued", relay_id=relay_id, reason="not held in time")
    state.reap_bodies(now)
