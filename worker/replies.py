"""Warning a customer, once per wamid of an account, that their file was too big for WhatsApp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.clients import ClientDirectory
from worker.config import WorkerSettings
from worker.errors import BusyError, InvalidId, PermanentError, RetryableError
from worker.jobs import ReplyJob
from worker.layout import InvalidIdError, checked_id
from worker.state import ReplyLedger, ReplyRef

__all__ = ["Replier", "ReplyOutcome"]

ReplyOutcome = Literal["sent", "already_sent"]


def recipient(job: ReplyJob) -> str:
    """Whom to warn: the phone number, else the BSUID; InvalidId when the job has neither."""
    address = job.to or job.recipient
    if not address:
        raise InvalidId("the reply names no phone number and no BSUID")
    return address


@dataclass
class Replier:
    """Sends TOO_BIG_REPLY_TEXT through the provider, guarded by the reply ledger."""

    settings: WorkerSettings
    clients: ClientDirectory
    ledger: ReplyLedger

    def reply(self, job: ReplyJob) -> ReplyOutcome:
        """Send the warning unless it was sent (or is being sent) for this wamid of this
        account."""
        try:
            checked_id("phone_number_id", job.phone_number_id)
        except InvalidIdError as exc:
            raise InvalidId(str(exc)) from None
        provider = self.clients.for_number(job.phone_number_id).provider
        ref = ReplyRef.of(job)
        claim = self.ledger.claim(ref)
        if claim == "sent":
            return "already_sent"
        if claim == "in_flight":
            raise BusyError("a reply for this wamid is being sent", retry_after=60)
        try:
            provider.send_text(
                job.phone_number_id, recipient(job), self.settings.too_big_reply_text
            )
        except PermanentError as exc:
            self.ledger.settle(ref, f"failed: {exc.reason}")
            raise
        except RetryableError:
            self.ledger.release(ref)
            raise
        self.ledger.settle(ref, "sent")
        return "sent"
