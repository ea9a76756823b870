"""The work items that travel through the queues, as small JSON-serialisable models."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MediaJob", "MediaType", "ReplyJob"]

MediaType = Literal["image", "video", "audio", "document", "sticker"]


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


class MediaJob(_Job):
    """One inbound media message to archive."""

    phone_number_id: str
    waba_id: str | None
    wamid: str
    sender: str
    timestamp: int = Field(ge=0, le=253402300799)
    """Unix seconds; the bound is the last second of year 9999."""
    type: MediaType
    media_id: str
    mime_type: str
    sha256: str | None
    """Hex digest announced by the webhook (Cloud API sends base64; parsing normalises it)."""
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class ReplyJob(_Job):
    """A warning text owed to a customer whose file Meta could not deliver (error 131052)."""

    phone_number_id: str
    wamid: str
    to: str
    error_code: int
