"""The work items that travel through the queues, as small JSON-serialisable models.

Jobs are written by one release and may be read by the next (records in Redis outlive a
deploy), so every field added after the first release is optional, and a job is serialised
without the fields left at their defaults (`to_wire`): a job of a phone-number customer with
nothing new to say is byte for byte what the first release wrote.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ANOMALIES",
    "REPLY_DROP_REASONS",
    "SOURCES",
    "Anomaly",
    "Customer",
    "Direction",
    "MediaJob",
    "MediaType",
    "ReplyDropReason",
    "ReplyJob",
    "Source",
]

MediaType = Literal["image", "video", "audio", "document", "sticker"]
Direction = Literal["inbound", "outbound"]
Source = Literal["messages", "edit", "smb_message_echoes", "history"]
"""Where in a webhook the media was described: an inbound message, an edit of one, a message
the business sent from the WhatsApp Business app (an echo), or shared chat history."""
SOURCES: tuple[Source, ...] = get_args(Source)

Anomaly = Literal[
    "sha256_missing",
    "sha256_malformed",
    "mime_type_missing",
    "mime_type_malformed",
    "filename_malformed",
    "caption_malformed",
    "timestamp_malformed",
    "unverified",
    "caption_truncated",
    "filename_truncated",
]
"""Something the webhook said of a media that could not be used as given; the media is
archived all the same and the sidecar lists what was odd. `unverified`: no digest was
announced anywhere (On-Premises with a bad webhook `sha256`), so the bytes are kept with the
digest computed on arrival. `caption_truncated`, `filename_truncated`: longer than the service
keeps (webhook/payload.py), cut to that length."""
ANOMALIES: tuple[Anomaly, ...] = get_args(Anomaly)

ReplyDropReason = Literal[
    "invalid_recipient", "request_cap", "recipient_rate", "account_rate", "reply_off"
]
"""Why a 131052 warning owed was dropped, never sent: its recipient is no phone number or BSUID
(`web`); the webhook owed more than REPLY_MAX_PER_WEBHOOK (`web`); the customer was warned
within REPLY_RECIPIENT_INTERVAL (worker); the account sent REPLY_RATE_PER_ACCOUNT warnings in
this minute (worker); the account sends no warning of its own (TOO_LARGE_REPLY off, `web`: a
`media.failed` event tells its consumers instead)."""
REPLY_DROP_REASONS: tuple[ReplyDropReason, ...] = (
    "invalid_recipient",
    "request_cap",
    "recipient_rate",
    "account_rate",
    "reply_off",
)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: object) -> object:
        # JSON may escape half of a UTF-16 pair; such text cannot be written as UTF-8 anywhere.
        if isinstance(value, str):
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value

    def to_wire(self) -> dict[str, Any]:
        """The job as a task argument and record: JSON types, fields at their default left out."""
        return self.model_dump(mode="json", exclude_defaults=True)


class Customer(_Job):
    """The WhatsApp user on the other side of the conversation, as Meta identified them.

    `phone` is absent for a customer who adopted a username and shares no number with the
    business; `user_id` is the business-scoped user id (BSUID, `US.1349...`), `parent_user_id`
    the parent BSUID where those are enabled.
    """

    phone: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    username: str | None = None

    @property
    def address(self) -> str | None:
        """How to reach them: the phone number when known, else the BSUID."""
        return self.phone or self.user_id


class MediaJob(_Job):
    """One media message to archive."""

    phone_number_id: str
    waba_id: str | None
    wamid: str
    sender: str | None = None
    """The message's `from`: the customer's phone number (inbound), the business's own number
    (outbound), or None for a customer known only by their BSUID."""
    timestamp: int = Field(ge=0, le=253402300799)
    """Unix seconds; the bound is the last second of year 9999."""
    type: MediaType
    media_id: str
    mime_type: str | None
    """As the webhook declared it; None when it declared none that could be used."""
    sha256: str | None
    """Hex digest announced by the webhook (Cloud API sends base64; parsing normalises it)."""
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None
    # Fields added by the second release; each defaults to what the first release meant.
    customer: Customer | None = None
    direction: Direction = "inbound"
    source: Source = "messages"
    url: str | None = None
    """The download URL the webhook carried (Cloud API webhooks from v24.0 on)."""
    original_message_id: str | None = None
    """For an edit: the wamid of the message it edits."""
    received_at: int | None = Field(default=None, ge=0, le=253402300799)
    """Unix seconds when `web` received the webhook."""
    anomalies: tuple[Anomaly, ...] = ()

    @property
    def window_start(self) -> int:
        """When the media id's 7 days at the provider began: the message's time, except for
        echoes and history, which may describe messages days or weeks before their webhook."""
        if self.source in ("smb_message_echoes", "history") and self.received_at is not None:
            return self.received_at
        return self.timestamp


class ReplyJob(_Job):
    """A warning text owed to a customer whose file Meta could not deliver (error 131052)."""

    phone_number_id: str
    wamid: str
    to: str | None = None
    """The customer's phone number, when the webhook gave one."""
    error_code: int
    recipient: str | None = None
    """The customer's BSUID, for a customer known only by it (sent as Meta's `recipient`)."""
