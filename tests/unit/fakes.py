"""In-memory fakes of the worker's collaborators, for tests that run in milliseconds.

Each implements the product's own interface (wa_media/core/ports.py, `MediaSource` of
wa_media/core/provider.py, worker/clients.py), and mypy checks that where they are handed to
`Archiver` and `Replier` (tests/unit/worker/). `FakeRecords` and `FakeLedger` write the very
field values the Redis store writes and follow its rules (the contract tests of
tests/unit/stores/test_records.py run the same cases against both). Any of them fails on
demand: `fail` maps an operation's name to the error it raises.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from wa_media.config.accounts import Account, WorkerAccounts
from wa_media.config.settings import WorkerSettings
from wa_media.config.target import ArchiveTarget
from wa_media.core.archive_policy import DEFAULT_POLICY, ArchivePolicy
from wa_media.core.errors import ArchiveError, BusyError, NoAccount, ObjectExists, TooBig
from wa_media.core.events import Event
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.ports import ObjectHead
from wa_media.core.provider import Connection, Fetched
from wa_media.core.records import (
    Attempt,
    LedgerEntry,
    MediaRecord,
    MediaRef,
    RateVerdict,
    ReplyClaim,
    ReplyRef,
    admits,
)
from wa_media.stores.records import LEASE_TTL
from worker.clients import NO_ACCOUNT_RETRY, AccountClients

__all__ = [
    "BUCKET",
    "PHONE",
    "FakeBucket",
    "FakeCommits",
    "FakeDirectory",
    "FakeEventSink",
    "FakeLedger",
    "FakeProvider",
    "FakeRates",
    "FakeRecords",
    "StoredObject",
    "account",
    "every_error",
    "settings",
]

PHONE = "106540352242922"
BUCKET = "archive"


@dataclass
class Faults:
    """Errors to raise, by operation name; each raised every time until removed."""

    fail: dict[str, Exception] = field(default_factory=dict, kw_only=True)

    def check(self, operation: str) -> None:
        error = self.fail.get(operation)
        if error is not None:
            raise error


# --- the records in Redis ---------------------------------------------------------------------


@dataclass
class FakeRecords(Faults):
    """`MediaStateStore` in memory: the hashes, the pending, failed and archived indexes, the
    leases. Times come from `clock`."""

    stall_after: float = 600.0
    lease_ttl: int = LEASE_TTL
    clock: Callable[[], float] = time.time
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)
    window: dict[str, float] = field(default_factory=dict)
    failed: dict[str, float] = field(default_factory=dict)
    archived: dict[str, float] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    """Held leases, by member: when each runs out."""
    skipped_log: list[dict[str, Any]] = field(default_factory=list)
    """What `wa:skipped` was given, oldest first."""

    def get(self, ref: MediaRef) -> MediaRecord:
        self.check("get")
        return MediaRecord.from_hash(dict(self.hashes.get(ref.member, {})))

    def admit_many(self, jobs: list[MediaJob]) -> list[bool]:
        self.check("admit")
        now = self.clock()
        admitted = []
        for job in jobs:
            member = MediaRef.of(job).member
            record = self.get(MediaRef.of(job))
            if not record.exists:
                self.hashes[member] = {
                    "state": "queued",
                    "wamid": job.wamid,
                    "job": job.model_dump_json(exclude_defaults=True),
                    "queued_at": f"{now:.3f}",
                    "updated_at": f"{now:.3f}",
                    "attempts": "0",
                }
                self.pending.setdefault(member, now + self.stall_after)
                self.window.setdefault(member, job.window_start)
            admitted.append(admits(record, job.wamid))
        return admitted

    def _write(
        self,
        ref: MediaRef,
        fields: dict[str, str],
        *,
        incr: tuple[str, ...] = (),
        pending_at: float | None = None,
        failed: bool = False,
        archived: bool = False,
    ) -> None:
        now = self.clock()
        record = self.hashes.setdefault(ref.member, {})
        record.update(fields, updated_at=f"{now:.3f}")
        for counter in incr:
            record[counter] = str(int(record.get(counter, "0")) + 1)
        if pending_at is None:
            self.pending.pop(ref.member, None)
            self.window.pop(ref.member, None)
        else:
            self.pending[ref.member] = pending_at
        if failed:
            self.failed[ref.member] = now
        else:
            self.failed.pop(ref.member, None)
        if archived:
            self.archived[ref.member] = now

    def start(self, ref: MediaRef) -> Attempt:
        self.check("start")
        crashed = self.get(ref).state == "archiving"
        self._write(
            ref,
            {"state": "archiving"},
            incr=("attempts", "crashes") if crashed else ("attempts",),
            pending_at=self.clock() + self.lease_ttl,
        )
        return self.get(ref).attempt()

    def mark_archived(self, ref: MediaRef, object_key: str) -> None:
        self.check("mark_archived")
        self._write(ref, {"state": "archived", "key": object_key, "last_error": ""}, archived=True)

    def mark_failed(
        self, ref: MediaRef, reason: str, *, label: str | None = None, code: int | None = None
    ) -> None:
        self.check("mark_failed")
        fields = {"state": "failed", "last_error": reason}
        if label is not None:
            fields["reason_label"] = label
        if code is not None:
            fields["error_code"] = str(code)
        self._write(ref, fields, failed=True)

    def mark_skipped(
        self, ref: MediaRef, reason: str, *, label: str, listed: dict[str, Any]
    ) -> None:
        self.check("mark_skipped")
        fields = {"state": "failed", "last_error": f"skipped: {reason}", "skipped": label}
        self._write(ref, fields)
        self.skipped_log.append(listed)

    def record_error(self, ref: MediaRef, reason: str, *, retry_at: float, integrity: bool) -> None:
        self.check("record_error")
        self._write(
            ref,
            {"state": "queued", "last_error": reason, "next_try_at": f"{retry_at:.3f}"},
            incr=("integrity_failures",) if integrity else (),
            pending_at=retry_at + self.stall_after,
        )

    def lease(
        self, ref: MediaRef, *, renew_until: float | None = None
    ) -> AbstractContextManager[None]:
        self.check("lease")
        if self.lease_remaining(ref):
            raise BusyError(
                "another worker holds this media's lease", retry_after=self.lease_ttl / 4
            )
        return self._held(ref)

    @contextmanager
    def _held(self, ref: MediaRef) -> Iterator[None]:
        self.leases[ref.member] = self.clock() + self.lease_ttl
        try:
            yield
        finally:
            self.leases.pop(ref.member, None)

    def due(self, now: float, limit: int = 500) -> list[str]:
        self.check("due")
        return sorted(
            (m for m, at in self.pending.items() if at <= now), key=lambda m: self.pending[m]
        )[:limit]

    def resolve(self, member: str) -> MediaRef | None:
        self.check("resolve")
        job = MediaRecord.from_hash(self.hashes.get(member, {})).media_job()
        return None if job is None else MediaRef.of(job)

    def look_again(self, member: str, at: float) -> None:
        self.check("look_again")
        if member in self.pending:
            self.pending[member] = at

    def forget_pending(self, member: str) -> None:
        self.check("forget_pending")
        self.pending.pop(member, None)
        self.window.pop(member, None)

    def lease_remaining(self, ref: MediaRef) -> float:
        self.check("lease_remaining")
        return max(0.0, self.leases.get(ref.member, 0.0) - self.clock())


@dataclass
class FakeLedger(Faults):
    """`ReplyLedger` in memory: the entries (by key, so that the previous release's count
    too), the owed warnings' jobs and their index."""

    claim_ttl: int = 300
    stall_after: float = 600.0
    clock: Callable[[], float] = time.time
    entries: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)

    def admit_many(self, jobs: list[ReplyJob]) -> None:
        self.check("admit")
        for job in jobs:
            ref = ReplyRef.of(job)
            self.jobs.setdefault(ref.member, job.model_dump_json(exclude_defaults=True))
            self.pending.setdefault(ref.member, self.clock() + self.stall_after)

    def claim(self, ref: ReplyRef) -> ReplyClaim:
        self.check("claim")
        value = self.entries.get(ref.key) or self.entries.get(ref.legacy_key)
        if value is None:
            self.entries[ref.key] = "sending"
            return "claimed"
        return "in_flight" if value == "sending" else "sent"

    def settle(self, ref: ReplyRef, entry: LedgerEntry) -> None:
        self.check("settle")
        self.entries[ref.key] = entry.text

    def release(self, ref: ReplyRef) -> None:
        self.check("release")
        self.entries.pop(ref.key, None)

    def status(self, ref: ReplyRef) -> LedgerEntry | None:
        self.check("status")
        value = self.entries.get(ref.key) or self.entries.get(ref.legacy_key)
        return None if value is None else LedgerEntry.parse(value)

    def settled(self, member: str) -> None:
        self.check("settled")
        self.pending.pop(member, None)

    def look_again(self, member: str, at: float) -> None:
        self.check("look_again")
        if member in self.pending:
            self.pending[member] = at

    def due(self, now: float, limit: int = 500) -> list[tuple[str, str | None]]:
        self.check("due")
        members = sorted(
            (m for m, at in self.pending.items() if at <= now), key=lambda m: self.pending[m]
        )
        return [(member, self.jobs.get(member)) for member in members[:limit]]


@dataclass
class FakeRates(Faults):
    """`ReplyLimits` in memory: one warning per customer of an account per `interval`, and
    `per_minute` an account (the minute never turns)."""

    per_minute: int = 60
    slots: dict[tuple[str, str], str] = field(default_factory=dict)
    """(phone_number_id, recipient) -> the wamid of the warning holding the slot."""
    sent: dict[str, int] = field(default_factory=dict)

    def admit(self, ref: ReplyRef, recipient: str) -> RateVerdict | None:
        self.check("admit")
        holder = self.slots.get((ref.phone_number_id, recipient))
        if holder == ref.wamid:
            return None
        if holder is not None:
            return "recipient_rate"
        if self.sent.get(ref.phone_number_id, 0) >= self.per_minute:
            return "account_rate"
        self.sent[ref.phone_number_id] = self.sent.get(ref.phone_number_id, 0) + 1
        self.slots[(ref.phone_number_id, recipient)] = ref.wamid
        return None

    def forget(self, ref: ReplyRef, recipient: str) -> None:
        self.check("forget")
        if self.slots.get((ref.phone_number_id, recipient)) == ref.wamid:
            del self.slots[(ref.phone_number_id, recipient)]


# --- the archive bucket ---------------------------------------------------------------------


@dataclass
class StoredObject:
    body: bytes
    metadata: dict[str, str]
    content_type: str

    @property
    def head(self) -> ObjectHead:
        return ObjectHead(hashlib.md5(self.body).hexdigest(), len(self.body), self.metadata)  # noqa: S324


@dataclass
class FakeUpload:
    """An upload into a `FakeBucket`: invisible until `commit`, which is conditional."""

    bucket: FakeBucket
    key: str
    content_type: str
    metadata: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    committed: bool = False

    def write(self, chunk: bytes) -> None:
        self.bucket.check("write")
        self.body += chunk

    def commit(self) -> None:
        self.bucket.check("commit")
        if self.key in self.bucket.objects:
            raise ObjectExists(self.key)
        self.bucket.objects[self.key] = StoredObject(
            bytes(self.body), self.metadata, self.content_type
        )
        self.committed = True


@dataclass
class FakeBucket(Faults):
    """`ArchiveStore` in memory; `unfinished` holds the keys of uploads left open (by a worker
    that died), which `abort_uploads` clears."""

    target: ArchiveTarget = field(default_factory=lambda: ArchiveTarget(BUCKET))
    objects: dict[str, StoredObject] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    """The keys of the JSON documents written, in order."""

    @property
    def bucket(self) -> str:
        return self.target.bucket

    @contextmanager
    def _upload(self, upload: FakeUpload) -> Iterator[FakeUpload]:
        try:
            yield upload
        finally:
            if not upload.committed:
                self.aborted.append(upload.key)

    def upload(
        self,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        content_disposition: str | None = None,
    ) -> AbstractContextManager[FakeUpload]:
        self.check("upload")
        return self._upload(FakeUpload(self, key, content_type, dict(metadata)))

    def metadata(self, key: str) -> dict[str, str] | None:
        head = self.head(key)
        return None if head is None else head.metadata

    def head(self, key: str) -> ObjectHead | None:
        self.check("head")
        stored = self.objects.get(key)
        return None if stored is None else stored.head

    def abort_uploads(self, key: str) -> int:
        self.check("abort_uploads")
        count = self.unfinished.count(key)
        self.unfinished = [k for k in self.unfinished if k != key]
        return count

    def put_json(self, key: str, document: dict[str, Any]) -> bool:
        self.check("put_json")
        if key in self.objects:
            return False
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        self.objects[key] = StoredObject(body, {}, "application/json; charset=utf-8")
        self.writes.append(key)
        return True

    def get_json(self, key: str) -> dict[str, Any] | None:
        self.check("get_json")
        return self.document(key) if key in self.objects else None

    def document(self, key: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.objects[key].body)
        return loaded


# --- the consumers' events --------------------------------------------------------------------


@dataclass
class FakeEventSink(Faults):
    """`EventSink` in memory: every event emitted, in order; `fail` may name `emit`."""

    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.check("emit")
        self.events.append(event)

    def of_type(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.type == kind]


@dataclass
class FakeCommits(Faults):
    """`CommitClaims` in memory: the keys whose commit was held."""

    held: list[str] = field(default_factory=list)

    @contextmanager
    def _hold(self, bucket: str, key: str) -> Iterator[None]:
        self.held.append(f"{bucket}/{key}")
        yield

    def hold(self, bucket: str, key: str) -> AbstractContextManager[None]:
        self.check("hold")
        return self._hold(bucket, key)


# --- the provider ---------------------------------------------------------------------------


@dataclass
class FakeMedia:
    body: bytes
    mime_type: str = "image/jpeg"
    announced_sha256: str | None = None
    """What the look-up announces; the body's digest unless set."""
    announced_size: int | None = None
    """What the look-up announces; the body's size unless set (-1: nothing announced)."""

    @property
    def sha256(self) -> str:
        return self.announced_sha256 or hashlib.sha256(self.body).hexdigest()

    @property
    def size(self) -> int | None:
        if self.announced_size == -1:
            return None
        return len(self.body) if self.announced_size is None else self.announced_size


@dataclass
class FakeProvider(Faults):
    """What archiving needs of a provider (`MediaSource`), serving `media` by id; `fail` may
    name `check_paused`, `fetch` (before the first byte), `chunks` (after the first), `delete`
    and `send_text`."""

    media: dict[str, FakeMedia] = field(default_factory=dict)
    connection: Connection = field(
        default_factory=lambda: Connection("cloud", "http://127.0.0.1:1", "token")
    )
    fetched: list[tuple[str, str | None]] = field(default_factory=list)
    """(media id, the webhook's URL) of each fetch."""
    deleted: list[str] = field(default_factory=list)
    texts: list[tuple[str, str, str]] = field(default_factory=list)

    def check_paused(self) -> None:
        self.check("check_paused")

    def _chunks(self, body: bytes) -> Iterator[bytes]:
        yield body[:1]
        self.check("chunks")
        if body[1:]:
            yield body[1:]

    @contextmanager
    def _fetch(self, media_id: str, url: str | None, max_bytes: int | None) -> Iterator[Fetched]:
        self.fetched.append((media_id, url))
        self.check("fetch")
        item = self.media[media_id]
        by_url = url is not None
        if not by_url and max_bytes is not None and (item.size or 0) > max_bytes:
            raise TooBig(
                f"media is {item.size} bytes, over the account's limit of {max_bytes} bytes"
            )
        yield Fetched(
            sha256=None if by_url else item.sha256,
            size=None if by_url else item.size,
            lookup={} if by_url else {"id": media_id, "mime_type": item.mime_type},
            chunks=self._chunks(item.body),
            lookup_seconds=None if by_url else 0.001,
            lookups=0 if by_url else 1,
            downloads=1,
            url_source="webhook" if by_url else "lookup",
        )

    def fetch(
        self,
        media_id: str,
        phone_number_id: str | None,
        url: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> AbstractContextManager[Fetched]:
        return self._fetch(media_id, url, max_bytes)

    def delete(self, media_id: str, phone_number_id: str | None) -> None:
        self.check("delete")
        self.deleted.append(media_id)

    def send_text(self, phone_number_id: str, to: str, body: str) -> str:
        self.check("send_text")
        self.texts.append((phone_number_id, to, body))
        return f"wamid.sent{len(self.texts)}"


# --- the accounts ---------------------------------------------------------------------------


def account(
    *, delete_after_archive: bool = False, prefix: str = "", policy: ArchivePolicy = DEFAULT_POLICY
) -> Account:
    """The one account of the fakes, serving PHONE."""
    return Account(
        phone_number_id=PHONE,
        connection=Connection("cloud", "http://127.0.0.1:1", "token"),
        target=ArchiveTarget(BUCKET, prefix),
        delete_after_archive=delete_after_archive,
        policy=policy,
    )


def settings(the_account: Account | None = None, **changes: Any) -> WorkerSettings:
    """Worker settings for the fakes' account."""
    values: dict[str, Any] = {
        "accounts": WorkerAccounts((the_account or account(),)),
        "redis_url": "redis://127.0.0.1:1",
        "archive": ArchiveTarget(BUCKET),
        "s3_endpoint_url": None,
        "max_media_bytes": 1000,
        "too_big_reply_text": "Your file is too big.",
        "try_seconds": 30,
        **changes,
    }
    return WorkerSettings(**values)


@dataclass
class FakeDirectory(Faults):
    """`ClientDirectory` over the fakes: PHONE's clients, NoAccount for any other number."""

    clients: AccountClients = field(
        default_factory=lambda: AccountClients(account(), FakeProvider(), FakeBucket())
    )

    def for_number(self, phone_number_id: str) -> AccountClients:
        self.check("for_number")
        if phone_number_id != self.clients.account.phone_number_id:
            raise NoAccount(
                f"no configured account serves phone_number_id {phone_number_id}",
                retry_after=NO_ACCOUNT_RETRY,
            )
        return self.clients


def every_error() -> list[type[ArchiveError]]:
    """Every class of the error tree (wa_media/core/errors.py), the root included."""
    from wa_media.core import errors

    found = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, ArchiveError)
    ]
    return sorted(found, key=lambda cls: cls.__name__)
