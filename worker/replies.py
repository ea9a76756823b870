"""Warning a customer, once per wamid of an account, that their file was too big for WhatsApp:
to a valid recipient only, once an hour per customer and within the account's rate."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from wa_media.config.settings import WorkerSettings
from wa_media.core.errors import BusyError, InvalidId, PermanentError, RetryableError, StorageError
from wa_media.core.identity import is_bsuid, phone_address
from wa_media.core.jobs import ReplyDropReason, ReplyJob
from wa_media.core.layout import checked_id
from wa_media.core.ports import ReplyRates, ReplyRecords
from wa_media.core.records import LedgerEntry, ReplyRef
from worker.clients import AccountDirectory

__all__ = ["Replier", "ReplyOutcome", "recipient", "reply_address"]

ReplyOutcome = Literal["sent", "already_sent"] | ReplyDropReason
"""`sent`, `already_sent`, or why the warning was dropped (never sent)."""


def recipient(job: ReplyJob) -> str:
    """Whom to warn: the phone number, else the BSUID; InvalidId when the job has neither."""
    address = job.to or job.recipient
    if not address:
        raise InvalidId("the reply names no phone number and no BSUID")
    return address


def reply_address(job: ReplyJob) -> str | None:
    """Where the warning may go: a phone number from `to`, or a BSUID from `recipient`; None
    for anything else. `web` lets only these through; a job recorded by a `web` of the previous
    release was not checked."""
    if job.to:
        return phone_address(job.to)
    return job.recipient if job.recipient is not None and is_bsuid(job.recipient) else None


@dataclass
class Replier:
    """Sends TOO_BIG_REPLY_TEXT through the provider, guarded by the reply ledger and limits."""

    settings: WorkerSettings
    clients: AccountDirectory
    ledger: ReplyRecords
    limits: ReplyRates

    def reply(self, job: ReplyJob) -> ReplyOutcome:
        """Send the warning unless it was sent (or is being sent) for this wamid of this
        account, or must be dropped."""
        checked_id("phone_number_id", job.phone_number_id)  # InvalidId when it is not one
        provider = self.clients.for_number(job.phone_number_id).provider
        recipient(job)  # InvalidId when the job names nobody
        ref = ReplyRef.of(job)
        claim = self.ledger.claim(ref)
        if claim == "sent":
            return "already_sent"
        if claim == "in_flight":
            raise BusyError("a reply for this wamid is being sent", retry_after=60)
        address = reply_address(job)
        dropped: ReplyDropReason | None = (
            "invalid_recipient" if address is None else self.limits.admit(ref, address)
        )
        if dropped is not None or address is None:
            # Never sent; recorded, so that a redelivered webhook does not bring it back.
            self.ledger.settle(ref, LedgerEntry.dropped(dropped or "invalid_recipient"))
            return dropped or "invalid_recipient"
        try:
            provider.send_text(job.phone_number_id, address, self.settings.too_big_reply_text)
        except PermanentError as exc:
            self.ledger.settle(ref, LedgerEntry.failed(exc.reason))
            # Never delivered: the customer's next 131052 may be answered. Should Redis fail
            # here, the slot only lasts its interval.
            with suppress(StorageError):
                self.limits.forget(ref, address)
            raise
        except RetryableError:
            self.ledger.release(ref)
            raise
        self.ledger.settle(ref, LedgerEntry.sent())
        return "sent"
