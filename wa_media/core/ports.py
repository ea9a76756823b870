"""What the worker needs from the records in Redis and from the archive bucket, as protocols.

The real adapters (wa_media/stores/records.py, s3.py, commit.py) satisfy them, and mypy checks
that where the worker is built (worker/services.py, worker/clients.py); the unit tests' fakes
(tests/unit/fakes.py) satisfy them too, so that the worker's decisions run in memory. Pure: no
client, no I/O.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from wa_media.core.events import Event
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.records import (
    Attempt,
    LedgerEntry,
    MediaRecord,
    MediaRef,
    RateVerdict,
    ReplyClaim,
    ReplyRef,
)

__all__ = [
    "ArchiveBucket",
    "ArchiveLocation",
    "CommitGuard",
    "EventSink",
    "MediaRecords",
    "ObjectHead",
    "ObjectUpload",
    "ReplyRates",
    "ReplyRecords",
]


@dataclass(frozen=True)
class ObjectHead:
    """What a HEAD of an object tells: its ETag (without quotes), size and user metadata."""

    etag: str
    size: int
    metadata: dict[str, str]


class EventSink(Protocol):
    """Where archive events go: every consumer endpoint of the event's account, delivered
    durably (at least once). Raises RedisUnavailable or BrokerUnavailable when it cannot take
    the event; an account without endpoints takes it and does nothing."""

    def emit(self, event: Event) -> None:
        """Hold `event` for delivery to its account's endpoints (again harmlessly: by its id)."""


class MediaRecords(Protocol):
    """The media's records, leases and pending index (`MediaStateStore`). Every method raises
    RedisUnavailable when Redis fails."""

    @property
    def lease_ttl(self) -> int:
        """A lease not renewed for this long means its worker died."""

    def get(self, ref: MediaRef) -> MediaRecord:
        """The media's record (empty when there is none)."""

    def admit_many(self, jobs: list[MediaJob]) -> list[bool]:
        """Record media a webhook announced; for each, whether its task is to be published."""

    def start(self, ref: MediaRef) -> Attempt:
        """A worker holding the lease starts a try; an unfinished earlier one was a crash."""

    def mark_archived(self, ref: MediaRef, object_key: str) -> None:
        """The object and its sidecar are committed."""

    def mark_failed(
        self, ref: MediaRef, reason: str, *, label: str | None = None, code: int | None = None
    ) -> None:
        """Given up, for `reason` (`label` in a word, the provider's error `code`)."""

    def mark_skipped(
        self, ref: MediaRef, reason: str, *, label: str, listed: dict[str, Any]
    ) -> None:
        """Left out by the account's policy (`label`, e.g. policy_size), for `reason`: settled
        like a failure but not listed among failures; `listed` goes to `wa-media skipped`."""

    def record_error(self, ref: MediaRef, reason: str, *, retry_at: float, integrity: bool) -> None:
        """A try failed; another is due at `retry_at`."""

    def lease(
        self, ref: MediaRef, *, renew_until: float | None = None
    ) -> AbstractContextManager[None]:
        """Hold the media exclusively; BusyError when another worker holds it."""

    def due(self, now: float, limit: int = 500) -> list[str]:
        """Members of the pending index the sweep should look at now."""

    def resolve(self, member: str) -> MediaRef | None:
        """The media an index member names; None when its record or job is gone."""

    def look_again(self, member: str, at: float) -> None:
        """Push a pending media's next look to `at`."""

    def forget_pending(self, member: str) -> None:
        """Drop a member from the pending indexes."""

    def lease_remaining(self, ref: MediaRef) -> float:
        """Seconds until the media's lease runs out; 0 when nobody holds it."""


class ReplyRecords(Protocol):
    """The warnings' ledger and the index of those owed (`ReplyLedger`)."""

    @property
    def stall_after(self) -> float:
        """How long an owed warning may wait before the sweep sends it again."""

    @property
    def claim_ttl(self) -> int:
        """How long a claim to send lasts."""

    def admit_many(self, jobs: list[ReplyJob]) -> None:
        """Record the warnings a webhook owes, before their tasks are published."""

    def claim(self, ref: ReplyRef) -> ReplyClaim:
        """Take the right to send, or learn it was sent (or settled) or is being sent."""

    def settle(self, ref: ReplyRef, entry: LedgerEntry) -> None:
        """Record the warning's final outcome."""

    def release(self, ref: ReplyRef) -> None:
        """Give the claim back after a failed try."""

    def status(self, ref: ReplyRef) -> LedgerEntry | None:
        """What the ledger holds for the warning."""

    def settled(self, member: str) -> None:
        """No sweep needs to look at the warning again."""

    def look_again(self, member: str, at: float) -> None:
        """Push an owed warning's next look to `at`."""

    def due(self, now: float, limit: int = 500) -> list[tuple[str, str | None]]:
        """Owed warnings the sweep should look at now: (member, job JSON)."""


class ReplyRates(Protocol):
    """The warnings' rates per account and per customer (`ReplyLimits`)."""

    def admit(self, ref: ReplyRef, recipient: str) -> RateVerdict | None:
        """None when the warning may go now (taking its places), else why not."""

    def forget(self, ref: ReplyRef, recipient: str) -> None:
        """Free the customer's slot this warning took: it was never delivered."""


class ObjectUpload(Protocol):
    """An object being written (`Upload`): nothing is visible until `commit`."""

    @property
    def key(self) -> str:
        """The object's key."""

    def write(self, chunk: bytes) -> None:
        """Add bytes."""

    def commit(self) -> None:
        """Make the object visible if its key is still free; ObjectExists if not."""


class ArchiveLocation(Protocol):
    """Where an account's media go (`ArchiveTarget`): its bucket and its key prefix."""

    @property
    def bucket(self) -> str:
        """The bucket's name."""

    @property
    def prefix(self) -> str:
        """The prefix of every object key."""


class ArchiveBucket(Protocol):
    """One account's archive bucket (`ArchiveStore`). Every method raises StorageError when S3
    fails."""

    @property
    def target(self) -> ArchiveLocation:
        """Where the account's media go."""

    @property
    def bucket(self) -> str:
        """The bucket's name."""

    def upload(
        self,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        content_disposition: str | None = None,
    ) -> AbstractContextManager[ObjectUpload]:
        """An upload, aborted unless committed before the block ends."""

    def metadata(self, key: str) -> dict[str, str] | None:
        """An object's user metadata; None when there is no such object."""

    def head(self, key: str) -> ObjectHead | None:
        """An object's ETag, size and metadata; None when there is no such object."""

    def abort_uploads(self, key: str) -> int:
        """Abort the unfinished multipart uploads of exactly `key`."""

    def put_json(self, key: str, document: dict[str, Any]) -> bool:
        """Write a small JSON document if the key is free; a taken key is left as it is.
        Whether it was written."""

    def get_json(self, key: str) -> dict[str, Any] | None:
        """A small JSON document (a sidecar); None when there is no such object."""


class CommitGuard(Protocol):
    """One commit of an object's key at a time (`CommitClaims`)."""

    def hold(self, bucket: str, key: str) -> AbstractContextManager[None]:
        """Hold the key's claim; BusyError when another writer keeps it too long."""
