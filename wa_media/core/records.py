"""The records kept in Redis, as typed values: what names a media or a warning, a media's
record (a hash of text fields), what a worker learns when it starts a try, and a warning's
ledger entry. Pure: reading and writing them is wa_media/stores/records.py's.

The wire format is the contract with the releases before and after this one: `MediaRecord`
reads every field as Redis holds it (bytes or text) and keeps the fields it does not know, so
`to_hash` gives back exactly the hash it was read from; `LedgerEntry.text` is the entry's
value byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.keys import lease_key, media_key, reply_job_key, reply_key

__all__ = [
    "STATES",
    "Attempt",
    "LedgerEntry",
    "LedgerOutcome",
    "MediaRecord",
    "MediaRef",
    "RateVerdict",
    "ReplyClaim",
    "ReplyRef",
    "State",
    "admits",
    "settled",
]

State = Literal["queued", "archiving", "archived", "failed"]
STATES: tuple[State, ...] = get_args(State)
ReplyClaim = Literal["claimed", "sent", "in_flight"]
RateVerdict = Literal["recipient_rate", "account_rate"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class MediaRef:
    """A media of one account: its record `wa:media:{phone_number_id}:{media_id}`, its lease
    `wa:lease:{phone_number_id}:{media_id}`, its member `{phone_number_id}:{media_id}` of
    `wa:pending` and `wa:failed`."""

    phone_number_id: str
    media_id: str

    @classmethod
    def of(cls, job: MediaJob) -> MediaRef:
        """The media a job names, in its account."""
        return cls(job.phone_number_id, job.media_id)

    @property
    def member(self) -> str:
        """Its name in the indexes, and the end of its keys."""
        return f"{self.phone_number_id}:{self.media_id}"

    @property
    def key(self) -> str:
        """Its record."""
        return media_key(self.member)

    @property
    def lease_key(self) -> str:
        """Its lease."""
        return lease_key(self.member)

    @property
    def legacy_key(self) -> str:
        """Where the previous release kept its record: under the media id alone."""
        return media_key(self.media_id)

    def __str__(self) -> str:
        return self.member


@dataclass(frozen=True)
class ReplyRef:
    """A warning owed by one account: its ledger entry `wa:reply:{phone_number_id}:{wamid}`,
    its job `wa:reply-job:{phone_number_id}:{wamid}`, its member
    `{phone_number_id}:{wamid}` of `wa:replies:pending`."""

    phone_number_id: str
    wamid: str

    @classmethod
    def of(cls, job: ReplyJob) -> ReplyRef:
        """The warning a job owes, in its account."""
        return cls(job.phone_number_id, job.wamid)

    @property
    def member(self) -> str:
        """Its name in `wa:replies:pending`, and the end of its keys."""
        return f"{self.phone_number_id}:{self.wamid}"

    @property
    def key(self) -> str:
        """Its ledger entry."""
        return reply_key(self.member)

    @property
    def job_key(self) -> str:
        """Its job, for the sweep."""
        return reply_job_key(self.member)

    @property
    def legacy_key(self) -> str:
        """The previous release's ledger entry: by wamid alone."""
        return reply_key(self.wamid)


@dataclass(frozen=True)
class Attempt:
    """What a worker learns when it starts on a media."""

    attempts: int
    crashes: int
    """Earlier attempts that never finished: the worker running them died."""
    integrity_failures: int


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _code(value: str | None) -> int | None:
    try:
        return None if not value else int(value)
    except ValueError:
        return None


def _time(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        moment = float(value)
    except ValueError:
        return None
    return moment if math.isfinite(moment) else None


@dataclass(frozen=True)
class MediaRecord:
    """A media's record `wa:media:{phone_number_id}:{media_id}`, typed; empty (`exists` False)
    when there is none. A field absent from the hash is None here; the hash holds every field
    as text, its times as Unix seconds written "%.3f"."""

    state: State | None = None
    wamid: str | None = None
    job: str | None = None
    """The MediaJob as JSON, exactly as recorded (the sweep enqueues it again as it is)."""
    attempts: int | None = None
    crashes: int | None = None
    integrity_failures: int | None = None
    key: str | None = None
    """The object's key, once archived."""
    last_error: str | None = None
    queued_at: float | None = None
    updated_at: float | None = None
    next_try_at: float | None = None
    requeued_at: float | None = None
    skipped: str | None = None
    """For a media the account's policy left out (state `failed`, never in `wa:failed`): the
    skip reason, e.g. `policy_size`."""
    reason_label: str | None = None
    """Why it failed, as a bounded label (wa_media/core/reasons.py); absent before this
    release."""
    error_code: int | None = None
    """The provider's error code it failed with, if any."""
    raw: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Every field as stored, those this release does not know included."""

    @classmethod
    def from_hash(
        cls,
        stored: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str],
    ) -> MediaRecord:
        """The record from its hash as HGETALL answers it (bytes or text); ValueError for a
        state or counter no release writes."""
        raw = {_text(name): _text(value) for name, value in stored.items()}
        state = raw.get("state")
        if state is not None and state not in STATES:
            raise ValueError(f"unknown media state {state!r}")
        return cls(
            state=state,  # narrowed by the check against STATES above
            wamid=raw.get("wamid"),
            job=raw.get("job"),
            attempts=_int(raw.get("attempts")),
            crashes=_int(raw.get("crashes")),
            integrity_failures=_int(raw.get("integrity_failures")),
            key=raw.get("key"),
            last_error=raw.get("last_error"),
            queued_at=_time(raw.get("queued_at")),
            updated_at=_time(raw.get("updated_at")),
            next_try_at=_time(raw.get("next_try_at")),
            requeued_at=_time(raw.get("requeued_at")),
            skipped=raw.get("skipped") or None,
            reason_label=raw.get("reason_label") or None,
            error_code=_code(raw.get("error_code")),
            raw=raw,
        )

    def to_hash(self) -> dict[str, str]:
        """The hash this record was read from, field for field."""
        return dict(self.raw)

    @property
    def exists(self) -> bool:
        """Whether there is a record at all."""
        return bool(self.raw) or self.state is not None

    @property
    def settled(self) -> bool:
        """Archived or failed: no worker or sweep has anything more to do with it."""
        return settled(self.state)

    def media_job(self) -> MediaJob | None:
        """The recorded job; None when there is none or it no longer validates."""
        if self.job is None:
            return None
        try:
            return MediaJob.model_validate_json(self.job)
        except ValueError:
            return None

    def attempt(self) -> Attempt:
        """What a worker that just started a try learns from the record."""
        return Attempt(
            attempts=1 if self.attempts is None else self.attempts,
            crashes=self.crashes or 0,
            integrity_failures=self.integrity_failures or 0,
        )


def settled(state: State | None) -> bool:
    """Archived or failed."""
    return state in ("archived", "failed")


def admits(record: MediaRecord, wamid: str) -> bool:
    """Whether a webhook's media is admitted (its task published) given its record: unless it
    is settled; a media archived by another message (an edit) is admitted, its task records the
    edit beside the object. The rule of the admission script (wa_media/stores/records.py)."""
    if record.state == "archived":
        return record.wamid != wamid
    return record.state != "failed"


LedgerOutcome = Literal["sending", "sent", "failed", "dropped"]


@dataclass(frozen=True)
class LedgerEntry:
    """A warning's ledger entry `wa:reply:{phone_number_id}:{wamid}`: `sending` (claimed),
    `sent`, `failed: {reason}` or `dropped: {reason}` (never sent)."""

    outcome: LedgerOutcome
    reason: str | None = None

    @classmethod
    def parse(cls, value: bytes | str) -> LedgerEntry:
        """The entry from its stored value; ValueError for a value no release writes."""
        text = _text(value)
        if text in ("sending", "sent"):
            return cls(text)  # type: ignore[arg-type]  # one of the two just above
        outcome, colon, reason = text.partition(": ")
        if colon and outcome in ("failed", "dropped"):
            return cls(outcome, reason)  # type: ignore[arg-type]
        raise ValueError(f"unknown ledger entry {text!r}")

    @classmethod
    def sent(cls) -> LedgerEntry:
        return cls("sent")

    @classmethod
    def failed(cls, reason: str) -> LedgerEntry:
        return cls("failed", reason)

    @classmethod
    def dropped(cls, reason: str) -> LedgerEntry:
        return cls("dropped", reason)

    @property
    def text(self) -> str:
        """The stored value."""
        return self.outcome if self.reason is None else f"{self.outcome}: {self.reason}"

    @property
    def in_flight(self) -> bool:
        """Claimed, and being sent."""
        return self.outcome == "sending"
