"""Turning a Cloud API webhook payload into work items. Pure: no I/O, no logging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import ValidationError

from worker.digests import normalise_sha256
from worker.jobs import MediaJob, MediaType, ReplyJob
from worker.numbers import ascii_int

__all__ = [
    "TOO_BIG",
    "NotWhatsAppPayload",
    "Notice",
    "ParsedPayload",
    "parse_cloud_payload",
    "parse_onprem_payload",
]

TOO_BIG = 131052
MEDIA_TYPES: frozenset[str] = frozenset(get_args(MediaType))
# The On-Premises API names a voice note's type and object `voice`; the Cloud API sends an
# `audio` with `"voice": true`.
VOICE = "voice"
_ONPREM_LISTS = ("contacts", "messages", "statuses", "errors")
_MAX_ID_LENGTH = 1024


class NotWhatsAppPayload(ValueError):
    """Valid JSON, but not a WhatsApp Business Account webhook."""


@dataclass(frozen=True)
class Notice:
    """Something in the payload worth a log line: a skipped message or a reported error."""

    event: str
    detail: str
    wamid: str | None = None
    code: int | None = None


@dataclass
class ParsedPayload:
    """What a payload asks of the workers, and what it only reports."""

    media: list[MediaJob] = field(default_factory=list)
    replies: list[ReplyJob] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    ignored: int = 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _error_codes(errors: Any) -> list[int]:
    codes = []
    for error in _list(errors):
        code = ascii_int(_dict(error).get("code"))
        if code is not None:
            codes.append(code)
    return codes


def _timestamp(value: Any) -> int:
    seconds = ascii_int(value)
    if seconds is None:
        raise ValueError("timestamp is not Unix seconds")
    return seconds


def _media_job(message: dict[str, Any], phone_number_id: str, waba_id: str | None) -> MediaJob:
    media = _dict(message.get(message["type"]))
    kind = "audio" if message["type"] == VOICE else message["type"]
    voice = True if message["type"] == VOICE else media.get("voice")
    digest = media.get("sha256")
    return MediaJob.model_validate(
        {
            "phone_number_id": phone_number_id,
            "waba_id": waba_id,
            "wamid": message.get("id"),
            "sender": message.get("from"),
            "timestamp": _timestamp(message.get("timestamp")),
            "type": kind,
            "media_id": _text(media.get("id")),
            "mime_type": media.get("mime_type"),
            "sha256": normalise_sha256(digest) if isinstance(digest, str) else None,
            "caption": media.get("caption"),
            "filename": media.get("filename") if kind == "document" else None,
            "voice": voice if kind == "audio" else None,
            "animated": media.get("animated") if kind == "sticker" else None,
        }
    )


def _parse_message(
    message: Any, phone_number_id: str | None, waba_id: str | None, out: ParsedPayload
) -> None:
    message = _dict(message)
    wamid = _text(message.get("id"))
    kind = message.get("type")
    sender = _text(message.get("from"))

    if TOO_BIG in _error_codes(message.get("errors")):
        if sender and wamid and phone_number_id:
            out.replies.append(
                ReplyJob(
                    phone_number_id=phone_number_id, wamid=wamid, to=sender, error_code=TOO_BIG
                )
            )
        else:
            out.notices.append(Notice("message_skipped", "131052 without sender", wamid, TOO_BIG))
        return
    for code in _error_codes(message.get("errors")):
        out.notices.append(Notice("message_error", "inbound message error", wamid, code))

    if not isinstance(kind, str) or (kind not in MEDIA_TYPES and kind != VOICE):
        out.ignored += 1
        return
    if phone_number_id is None:
        out.notices.append(Notice("message_skipped", "no metadata.phone_number_id", wamid))
        return
    try:
        out.media.append(_media_job(message, phone_number_id, waba_id))
    except (ValidationError, ValueError) as exc:
        detail = exc.errors()[0]["loc"] if isinstance(exc, ValidationError) else str(exc)
        out.notices.append(Notice("message_skipped", f"malformed {kind} message: {detail}", wamid))


def _parse_value(
    value: dict[str, Any], phone_number_id: str | None, waba_id: str | None, out: ParsedPayload
) -> None:
    for message in _list(value.get("messages")):
        try:
            _parse_message(message, phone_number_id, waba_id, out)
        except (ValueError, TypeError) as exc:
            # Whatever one message holds, it must not cost the others their delivery.
            wamid = _text(_dict(message).get("id"))
            out.notices.append(Notice("message_skipped", f"unreadable message: {exc}", wamid))
    for code in _error_codes(value.get("errors")):
        out.notices.append(Notice("account_error", "error reported for the account", code=code))
    for status in _list(value.get("statuses")):
        status = _dict(status)
        for code in _error_codes(status.get("errors")):
            out.notices.append(
                Notice("status_error", "error on a sent message", _text(status.get("id")), code)
            )
        out.ignored += 1


def parse_cloud_payload(
    document: Any, accepts: Callable[[str], bool] = lambda _: True
) -> ParsedPayload:
    """Collect every media message and every 131052 reply owed, across all entries and changes.

    Messages to a phone_number_id that `accepts` refuses are skipped with a notice: no account
    of this deployment archives them.
    """
    if not (
        isinstance(document, dict)
        and document.get("object") == "whatsapp_business_account"
        and isinstance(document.get("entry"), list)
    ):
        raise NotWhatsAppPayload("not a whatsapp_business_account payload with an entry list")
    out = ParsedPayload()
    for entry in document["entry"]:
        entry = _dict(entry)
        waba_id = _text(entry.get("id"))
        for change in _list(entry.get("changes")):
            change = _dict(change)
            if change.get("field", "messages") != "messages":
                out.ignored += 1
                continue
            value = _dict(change.get("value"))
            number = _text(_dict(value.get("metadata")).get("phone_number_id"))
            if number is not None and not accepts(number):
                messages = len(_list(value.get("messages")))
                out.notices.append(
                    Notice("unknown_account", f"phone_number_id {number}: {messages} message(s)")
                )
                continue
            _parse_value(value, number, waba_id, out)
    return out


def parse_onprem_payload(document: Any, phone_number_id: str) -> ParsedPayload:
    """Collect the media and replies of an On-Premises webhook, which names no phone number:
    `phone_number_id` is the account's, known from the URL's token."""
    if not (
        isinstance(document, dict)
        and any(isinstance(document.get(name), list) for name in _ONPREM_LISTS)
        and all(isinstance(document.get(name, []), list) for name in _ONPREM_LISTS)
    ):
        raise NotWhatsAppPayload(
            "not an On-Premises payload: expected top-level contacts, messages, statuses or "
            "errors lists"
        )
    out = ParsedPayload()
    _parse_value(document, phone_number_id, None, out)
    return out
