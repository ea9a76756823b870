"""Archiving one media: look up, stream-download, verify, commit to S3, write the sidecar."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from billiard.exceptions import SoftTimeLimitExceeded

from wa_media.config.accounts import Account
from wa_media.config.settings import WorkerSettings
from wa_media.core.errors import (
    ArchiveError,
    BusyError,
    Expired,
    IntegrityError,
    PermanentError,
    PolicySkip,
    RetryableError,
    SizeMismatch,
    TimedOut,
    TooBig,
    WorkerDied,
)
from wa_media.core.events import Event, archived_event, failed_event, skipped_event
from wa_media.core.index import IndexEntry, Kind
from wa_media.core.jobs import Anomaly, MediaJob
from wa_media.core.layout import (
    STORED_FALLBACK_TYPE,
    build_key,
    edit_record,
    edit_record_key,
    object_disposition,
    object_metadata,
    sidecar,
    sidecar_key,
    storable_mime_type,
)
from wa_media.core.policy import MAX_WORKER_DEATHS, media_deadline, plan_retry
from wa_media.core.ports import ArchiveBucket, CommitGuard, EventSink, MediaRecords
from wa_media.core.provider import Fetched
from wa_media.core.reasons import Reason, reason_of
from wa_media.core.records import Attempt, MediaRecord, MediaRef
from wa_media.observability.logs import get_logger, milliseconds, since
from wa_media.observability.metrics import worker_metrics
from wa_media.providers.transfer import Deadline, Stopwatch, Tally, under_deadline
from wa_media.stores.broker import MAX_COUNTDOWN
from wa_media.stores.commit import commit_upload
from wa_media.stores.index import index_media
from worker.clients import AccountClients, AccountDirectory

__all__ = [
    "Archiver",
    "Done",
    "Failed",
    "Outcome",
    "Result",
    "RetryLater",
    "Skipped",
    "check_download",
]

log = get_logger(__name__)

Outcome = Literal["archived", "already_archived", "edit_recorded"]


def check_download(digest_hex: str, size: int, fetched: Fetched, job: MediaJob) -> None:
    """Raise IntegrityError unless the bytes match every digest and size that was announced:
    the provider's look-up and the webhook's."""
    if fetched.size is not None and size != fetched.size:
        raise SizeMismatch(f"downloaded {size} bytes, look-up announced {fetched.size}")
    if fetched.sha256 is not None and not hmac.compare_digest(digest_hex, fetched.sha256):
        raise IntegrityError("sha256 of the download differs from the look-up's")
    if job.sha256 is not None and not hmac.compare_digest(digest_hex, job.sha256):
        raise IntegrityError("sha256 of the download differs from the webhook's")


# The object metadata's `sha256` for bytes no digest was announced for.
UNVERIFIED = "unverified"


def _announced_digest(job: MediaJob, fetched: Fetched) -> str | None:
    return fetched.sha256 or job.sha256


def stored_type(job: MediaJob, fetched: Fetched) -> tuple[str, tuple[Anomaly, ...]]:
    """The object's Content-Type and what was odd on the way: the webhook's MIME type, else the
    provider's, else application/octet-stream.

    Only a well-formed one is ever sent to S3 (`storable_mime_type`): S3 refuses a write whose
    Content-Type holds control characters or other bytes, and would refuse it at every try. One
    that is not (from the look-up, or from a job recorded before `web` checked it) is recorded
    as `mime_type_malformed`, and the next one tried.
    """
    odd: tuple[Anomaly, ...] = ()
    for given in (job.mime_type, fetched.lookup.get("mime_type")):
        if given is None or given == "":
            continue
        usable = storable_mime_type(given)
        if usable is not None:
            return usable, odd
        odd = ("mime_type_malformed",)
    return STORED_FALLBACK_TYPE, odd


@dataclass(frozen=True)
class Done:
    """The media is in the bucket (now, or already before this try)."""

    outcome: Outcome
    key: str
    sidecar: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The sidecar this try wrote; None when it was written before (read back for its event)."""


@dataclass(frozen=True)
class Failed:
    """Given up; the state record says why, `label` in a word (wa_media/core/reasons.py)."""

    reason: str
    code: int | None = None
    label: Reason = "other"


@dataclass(frozen=True)
class RetryLater:
    """Another try is due in `countdown` seconds."""

    countdown: float
    error: RetryableError


@dataclass(frozen=True)
class Skipped:
    """Left out by the account's archive policy (`label`: policy_size, policy_mime), for
    `reason`; recorded, listed and evented, never retried."""

    reason: str
    label: str


Result = Done | Failed | RetryLater | Skipped


@dataclass
class Archiver:
    """Turns a MediaJob into a verified object and sidecar in the bucket, exactly once."""

    settings: WorkerSettings
    clients: AccountDirectory
    state: MediaRecords
    commits: CommitGuard
    """One commit of an object's key at a time (`CommitClaims`)."""
    events: EventSink
    """Where the consumers' `media.archived`, `media.failed` and `media.skipped` go."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @staticmethod
    def object_key(job: MediaJob, prefix: str) -> str:
        """The job's key; InvalidId (a PermanentError) for ids that cannot form one."""
        return build_key(prefix, job.phone_number_id, job.timestamp, job.media_id, job.mime_type)

    def archive(self, job: MediaJob) -> Result:
        """Try once to archive the media, record in its state what came of it, and tell the
        account's consumers when that is final.

        The event goes after the record: should the sink fail (RedisUnavailable,
        BrokerUnavailable), the task is retried, finds the media settled, and emits the same
        event (same id) again; an event is never lost, at worst sent twice.
        """
        result = self._archive_once(job)
        event = self._event(job, result)
        if event is not None:
            self.events.emit(event)
        return result

    def _event(self, job: MediaJob, result: Result) -> Event | None:
        match result:
            case Done(_, key, document):
                if document is None:
                    document = self._sidecar(job, key)
                return archived_event(job, document, sidecar_key(key))
            case Failed(reason, code, label):
                return failed_event(job, reason, code, label)
            case Skipped(reason, label):
                return skipped_event(job, label, reason)
        return None

    def _sidecar(self, job: MediaJob, key: str) -> dict[str, Any]:
        """The archived media's sidecar, for the event of a message that finds it archived; only
        its key when it cannot be read now (the event of the first archive, same id, named the
        rest: a consumer got it, or gets this one; a duplicate must not retry for it)."""
        try:
            store = self.clients.for_number(job.phone_number_id).store
            return store.get_json(sidecar_key(key)) or {"key": key}
        except ArchiveError as exc:
            log.warning("sidecar_unread", key=key, reason=exc.reason)
            return {"key": key}

    def _settled(
        self, job: MediaJob, clients: AccountClients, record: MediaRecord, key: str
    ) -> Result | None:
        """What a task finds of a media already settled: archived (Done), or failed or skipped
        (a duplicate task, or the retry of one whose event the sink did not take)."""
        if record.state == "archived":
            # The record names the key the media went to (an edit's job may know another
            # MIME type than the message that brought the media first).
            return self._already_archived(clients, job, record.key or key)
        if record.state == "failed" and record.wamid in (None, job.wamid):
            reason = record.last_error or "failed"
            if record.skipped is not None:
                return Skipped(reason.removeprefix("skipped: "), record.skipped)
            label: Reason = record.reason_label or "other"  # type: ignore[assignment]
            return Failed(reason, record.error_code, label)
        return None

    def _archive_once(self, job: MediaJob) -> Result:
        deadline = media_deadline(job.window_start)
        try:
            clients = self.clients.for_number(job.phone_number_id)
        except RetryableError as exc:
            return self._plan(job, exc, deadline)
        try:
            key = self.object_key(job, clients.store.target.prefix)
            record = self.state.get(MediaRef.of(job))
            settled = self._settled(job, clients, record, key)
            if settled is not None:
                return settled
            first = record.wamid
            if first not in (None, job.wamid) and record.state in ("queued", "archiving"):
                # Another message brought this media first (the original of an edit): its task,
                # or the sweep, archives it; this one then records itself beside the object.
                busy = BusyError("the media's first message is not archived yet", retry_after=30)
                return RetryLater(30, busy)
            if time.time() >= deadline:
                raise Expired("expired: the media id is past its 7-day window")
        except PermanentError as exc:
            return self._fail(job, exc.reason, exc.code, reason_of(exc))
        # The threads pool enforces no time limit at all: a try bounds itself, its transfer
        # included (wa_media/providers/transfer.py), and its lease is not renewed past that.
        limit = Deadline(self.settings.try_seconds)
        try:
            with self.state.lease(MediaRef.of(job), renew_until=limit.at):
                # Every outcome is recorded while the lease is held, so the sweep never
                # mistakes a try that just ended for one whose worker died.
                return self._try_under_lease(clients, job, key, deadline, limit)
        except BusyError as exc:
            return RetryLater(exc.retry_after or self.state.lease_ttl / 4, exc)

    def _already_archived(self, clients: AccountClients, job: MediaJob, key: str) -> Result:
        """Done; and another message that brought the same media (an edit that kept it, or the
        message an edit archived first) gets its own record beside the object."""
        if job.wamid == self.state.get(MediaRef.of(job)).wamid:
            return Done("already_archived", key)
        try:
            # This message's wamid finds the media too: indexed before its record, as a sidecar.
            kind: Kind = "edit" if job.original_message_id else "message"
            index_media(clients.store, self._entry(clients, job, key, kind=kind))
            clients.store.put_json(
                edit_record_key(key, job.wamid),
                edit_record(job, object_key=key, recorded_at=self.clock()),
            )
        except RetryableError as exc:
            return self._plan(job, exc, media_deadline(job.window_start))
        log.info("edit_recorded", key=key, original_message_id=job.original_message_id)
        return Done("edit_recorded", key)

    def _try_under_lease(
        self, clients: AccountClients, job: MediaJob, key: str, deadline: float, limit: Deadline
    ) -> Result:
        try:
            with under_deadline(limit):
                outcome, document = self._archive(clients, job, key, limit)
            if outcome == "already_archived":
                return self._already_archived(clients, job, key)
            return Done(outcome, key, document)
        except PolicySkip as exc:
            return self._skip(job, exc.reason, exc.label)
        except TooBig as exc:
            # Over the account's own limit (the provider checks it before any byte), or over
            # MAX_MEDIA_BYTES when that is the larger: skipped by the account's policy.
            own = clients.account.policy.limit(job.type)
            if own is not None and own <= self.settings.max_media_bytes:
                return self._skip(job, exc.reason, "policy_size")
            return self._fail(job, exc.reason, exc.code, reason_of(exc))
        except PermanentError as exc:
            return self._fail(job, exc.reason, exc.code, reason_of(exc))
        except RetryableError as exc:
            return self._plan(job, exc, deadline)
        except SoftTimeLimitExceeded:
            return self._plan(job, TimedOut("try ran past its soft time limit"), deadline)
        except Exception as exc:
            # A failure nobody classified yet: retrying is safe, dropping the media is not.
            log.exception("media_unexpected_error")
            return self._plan(job, RetryableError(f"unexpected {type(exc).__name__}"), deadline)

    def _plan(self, job: MediaJob, exc: RetryableError, deadline: float) -> Result:
        record = self.state.get(MediaRef.of(job))
        now = time.time()
        plan = plan_retry(
            exc,
            attempts=1 if record.attempts is None else record.attempts,
            integrity_failures=record.integrity_failures or 0,
            now=now,
            deadline=deadline,
            cap=MAX_COUNTDOWN,
        )
        if plan.countdown is None:
            reason = plan.give_up or exc.reason
            return self._fail(job, reason, exc.code, plan.give_up_reason or reason_of(exc))
        self.state.record_error(
            MediaRef.of(job),
            exc.reason,
            retry_at=now + plan.countdown,
            integrity=isinstance(exc, IntegrityError),
        )
        return RetryLater(plan.countdown, exc)

    def _fail(self, job: MediaJob, reason: str, code: int | None, label: Reason) -> Failed:
        self.state.mark_failed(MediaRef.of(job), reason, label=label, code=code)
        return Failed(reason, code, label)

    def _skip(self, job: MediaJob, reason: str, label: str) -> Skipped:
        listed = {
            "reason": label,
            "detail": reason,
            "wamid": job.wamid,
            "phone_number_id": job.phone_number_id,
            "type": job.type,
        }
        self.state.mark_skipped(MediaRef.of(job), reason, label=label, listed=listed)
        worker_metrics().skipped.labels(reason=label).inc()
        return Skipped(reason, label)

    @staticmethod
    def _policy_check(account: Account, job: MediaJob, fetched: Fetched) -> None:
        """PolicySkip when the look-up tells what the webhook did not: a size over the
        account's limit (which the provider checks itself before the download, by
        `max_bytes`), or a MIME type it does not archive."""
        verdict = account.policy.by_size(job.type, fetched.size)
        looked_up = fetched.lookup.get("mime_type")
        if verdict is None and job.mime_type is None and isinstance(looked_up, str):
            verdict = account.policy.by_type(job.type, looked_up)
        if verdict is not None:
            raise PolicySkip(verdict.detail, label=verdict.reason)

    def _archive(
        self, clients: AccountClients, job: MediaJob, key: str, limit: Deadline
    ) -> tuple[Outcome, dict[str, Any] | None]:
        started = time.perf_counter()
        provider, store = clients.provider, clients.store
        provider.check_paused()
        attempt = self.state.start(MediaRef.of(job))
        if attempt.crashes >= MAX_WORKER_DEATHS:
            raise WorkerDied(f"the worker died {attempt.crashes} times while archiving this media")
        # The bucket is the truth: a sidecar means archived, whatever Redis remembers.
        if self._may_be_archived(attempt, clients.account) and (
            store.metadata(sidecar_key(key)) is not None
        ):
            self.state.mark_archived(MediaRef.of(job), key)
            return "already_archived", None
        if attempt.attempts > 1:
            # An earlier try may have left an unfinished multipart upload: its worker died, or
            # S3 was down when it tried to abort. Its parts would linger unseen.
            store.abort_uploads(key)
        # Bytes flow from the provider to S3 as they arrive: each stopwatch adds up the waits
        # on one side, so that a slow provider and a slow S3 tell apart.
        download, s3 = Stopwatch(), Stopwatch()
        opening = time.perf_counter()
        url = self._webhook_url(job, attempt)
        own_limit = clients.account.policy.limit(job.type)
        with provider.fetch(job.media_id, job.phone_number_id, url, max_bytes=own_limit) as fetched:
            # Entering `fetch` looked the media up (unless the webhook's URL served) and opened
            # its download.
            download.seconds = time.perf_counter() - opening - (fetched.lookup_seconds or 0)
            self._looked_up(fetched)
            self._policy_check(clients.account, job, fetched)
            content_type, odd = stored_type(job, fetched)
            digest, size, committed = self._store(
                store,
                key,
                job,
                fetched,
                content_type,
                limit,
                (download, s3),
                own_limit,
            )
        document = sidecar(
            job,
            bucket=store.bucket,
            key=key,
            sha256_hex=digest,
            size=size,
            lookup=fetched.lookup,
            archived_at=self.clock(),
            mime_type=content_type,
            url_source=fetched.url_source,
            anomalies=(*odd, *(() if _announced_digest(job, fetched) else ("unverified",))),
        )
        with s3.timing():
            # The index first: the sidecar stays the last write (its presence means archived).
            index_media(store, self._entry(clients, job, key))
            store.put_json(sidecar_key(key), document)
        self.state.mark_archived(MediaRef.of(job), key)
        if not committed:
            # Another writer committed these very bytes; the sidecar was written if it lacked one.
            return "already_archived", None
        metrics = worker_metrics()
        metrics.upload_seconds.observe(s3.seconds)
        metrics.archived_bytes.inc(size)
        for anomaly in document["anomalies"]:
            metrics.anomalies.labels(anomaly=anomaly).inc()
        metrics.media_provider_calls.labels(kind="lookup").observe(fetched.lookups)
        metrics.media_provider_calls.labels(kind="download").observe(fetched.downloads)
        log.info(
            "archived",
            duration_ms=milliseconds(s3.seconds),
            bytes=size,
            key=key,
            try_ms=since(started),
        )
        if clients.account.delete_after_archive:
            self._delete_from_provider(clients, job)
        return "archived", document

    def _entry(
        self,
        clients: AccountClients,
        job: MediaJob,
        key: str,
        kind: Kind = "message",
    ) -> IndexEntry:
        """The index entry of the job's message, pointing at the object and its sidecar."""
        return IndexEntry.of(
            phone_number_id=job.phone_number_id,
            media_id=job.media_id,
            wamid=job.wamid,
            bucket=clients.store.bucket,
            key=key,
            sidecar_key=sidecar_key(key),
            at=self.clock(),
            kind=kind,
        )

    def _webhook_url(self, job: MediaJob, attempt: Attempt) -> str | None:
        """The webhook's download URL, when this try may skip the look-up.

        Only the first try: a later one looks the media up, whatever failed before. Only with
        the webhook's digest: the URL comes without a digest or size of its own, and the bytes
        are never kept unverified to save a call. Only with the webhook's MIME type: without
        it, the look-up's names the object's type.
        """
        if (
            self.settings.use_webhook_url
            and attempt.attempts == 1
            and job.sha256 is not None
            and storable_mime_type(job.mime_type) is not None
        ):
            return job.url
        return None

    @staticmethod
    def _looked_up(fetched: Fetched) -> None:
        if fetched.lookup_seconds is None:
            # The webhook's URL served, or the provider (On-Premises) answers bytes by id.
            return
        worker_metrics().lookup_seconds.observe(fetched.lookup_seconds)
        log.info(
            "looked_up",
            duration_ms=milliseconds(fetched.lookup_seconds),
            bytes=fetched.size,
            lookups=fetched.lookups,
        )

    @staticmethod
    def _may_be_archived(attempt: Attempt, account: Account) -> bool:
        """Whether an earlier try may have committed the media, so its sidecar is looked for.

        Not on a first try, which saves an S3 request per media: only a Redis that lost the
        record (a redelivered webhook starts afresh) makes a first try meet a committed media,
        and the conditional commit keeps even that exactly-once, at the cost of a download. An
        account that deletes media from the provider always looks: the copy may be gone.
        """
        return attempt.attempts > 1 or attempt.crashes > 0 or account.delete_after_archive

    @staticmethod
    def _delete_from_provider(clients: AccountClients, job: MediaJob) -> None:
        # The archive copy is verified and committed: a failed delete costs nothing but the
        # provider's own copy living on until it expires, so it is logged, not retried.
        try:
            clients.provider.delete(job.media_id, job.phone_number_id)
        except ArchiveError as exc:
            log.warning("media_delete_failed", reason=exc.reason)
        else:
            log.info("media_deleted_from_provider")

    def _store(
        self,
        store: ArchiveBucket,
        key: str,
        job: MediaJob,
        fetched: Fetched,
        content_type: str,
        limit: Deadline,
        watches: tuple[Stopwatch, Stopwatch],
        own_limit: int | None = None,
    ) -> tuple[str, int, bool]:
        """Stream the bytes into the key; past `own_limit` (the account's limit for the media's
        type, when the look-up gave no size) PolicySkip stops the download."""
        download, s3 = watches
        # Known before the first byte: the object's metadata is set when the upload starts,
        # and the commit only happens if the bytes match it. Only a provider without a look-up
        # (On-Premises) can leave it unknown: the bytes are then kept unverified, not lost.
        expected = _announced_digest(job, fetched)
        if expected is None:
            log.warning("media_unverified", reason="no sha256 announced by webhook or provider")
        tally = Tally(self.settings.max_media_bytes)
        with store.upload(
            key,
            content_type=content_type,
            metadata=object_metadata(job, expected or UNVERIFIED),
            content_disposition=object_disposition(job, content_type),
        ) as upload:
            for chunk in tally.through(download.through(fetched.chunks), fetched.size):
                if own_limit is not None and tally.size > own_limit:
                    raise PolicySkip(
                        f"{job.type} passed the account's {own_limit} bytes; stopped",
                        label="policy_size",
                    )
                with s3.timing():
                    upload.write(chunk)
                limit.check("the transfer")
            digest, size = tally.sha256, tally.size
            worker_metrics().download_seconds.observe(download.seconds)
            log.info(
                "downloaded",
                duration_ms=milliseconds(download.seconds),
                bytes=size,
                url_source=fetched.url_source,
            )
            checking = time.perf_counter()
            check_download(digest, size, fetched, job)
            # The digest was computed as the bytes passed: verifying took that, and the check.
            verifying = tally.hashing.seconds + time.perf_counter() - checking
            log.info("verified", duration_ms=milliseconds(verifying), bytes=size, sha256=digest)
            with s3.timing():
                # False when another writer committed the same bytes first; KeyConflict when
                # the key holds other bytes (wa_media/stores/commit.py).
                committed = commit_upload(upload, store, self.commits, digest, size)
        return digest, size, committed
