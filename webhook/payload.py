"""Turning a webhook payload into work items. Pure: no I/O, no logging.

What a payload may hold (Meta's webhook references; 360dialog delivers the same changes):
- `field: messages`: inbound messages in `value.messages[]`, among them `"type": "edit"`
  whose `edit.message` is a whole message (a media with a new media id, or a new caption);
- `field: smb_message_echoes`: messages the business sent from the WhatsApp Business app
  (coexistence), in `value.message_echoes[]`, `from` the business and `to` the customer;
- `field: history`: chat history shared at onboarding, in
  `value.history[].threads[].messages[]`, either direction;
- 360dialog's partner envelope `{"event": "<field>", "data": <value with the WABA id>}` for
  the same changes.

A customer who adopted a username may have no phone number: the message then carries the
business-scoped user id (`from_user_id`) instead of `from`, and `contacts[]` a `user_id` (and
`parent_user_id`, `profile.username`). The rule throughout: a parseable, signed webhook never
makes a file disappear silently; what is not turned into work is `Skipped`, with a reason.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError

from wa_media.core.archive_policy import DEFAULT_POLICY, ArchivePolicy
from wa_media.core.digests import normalise_sha256
from wa_media.core.errors import NotWhatsAppPayload
from wa_media.core.events import Event, skipped_event, too_large_event
from wa_media.core.identity import is_bsuid, phone_address
from wa_media.core.jobs import (
    REPLY_DROP_REASONS,
    Anomaly,
    Customer,
    Direction,
    MediaJob,
    MediaType,
    ReplyDropReason,
    ReplyJob,
    Source,
)
from wa_media.core.layout import storable_mime_type
from wa_media.core.numbers import ascii_int

__all__ = [
    "LISTED_REASONS",
    "MAX_CAPTION",
    "MAX_FILENAME",
    "REPLY_DROP_REASONS",
    "SKIP_REASONS",
    "TOO_BIG",
    "DroppedReply",
    "Notice",
    "ParsedPayload",
    "SkipReason",
    "Skipped",
    "parse_cloud_payload",
    "parse_onprem_payload",
]

TOO_BIG = 131052
MEDIA_TYPES: frozenset[str] = frozenset(get_args(MediaType))
# The On-Premises API names a voice note's type and object `voice`; the Cloud API sends an
# `audio` with `"voice": true`.
VOICE = "voice"
EDIT = "edit"
# Message types that carry no file: counted as `not_media`; any other type is `unknown_type`.
KNOWN_NOT_MEDIA = frozenset(
    {
        "text",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "request_welcome",
        "referral",
        "revoke",
        "ephemeral",
        "template",
        "unsupported",
    }
)
_ONPREM_LISTS = ("contacts", "messages", "statuses", "errors")
_MAX_ID_LENGTH = 1024
# Ids are bounded printable ASCII without spaces, control or path characters, checked here so
# that none reaches a key, a header, a log or a terminal as it came. A media id and a
# phone_number_id form object keys (On-Premises media ids are UUIDs); a wamid is Meta's
# `wamid.` and base64 (so `+`, `/` and `=`), or On-Premises' base64url; a BSUID is a country
# code, periods, letters and digits.
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_WAMID = re.compile(r"[A-Za-z0-9_.:=+/-]{1,256}")
_BSUID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_ID_RULES = {
    _KEY_ID: "1 to 128 of A-Z a-z 0-9 _ . -",
    _WAMID: "1 to 256 of A-Z a-z 0-9 _ . : = + / -",
    _BSUID: "1 to 256 of A-Z a-z 0-9 _ . -",
}
# Kept at most: WhatsApp's captions hold 1,024 characters, and a file system's names 255.
MAX_CAPTION = 4096
MAX_FILENAME = 255
# The last second of year 9999: later timestamps cannot be dated in an object key.
_LAST_SECOND = 253402300799
_URL = re.compile(r"https?://\S+")
# The 131052 warnings one webhook may owe unless the caller says otherwise.
DEFAULT_MAX_REPLIES = 10

SkipReason = Literal[
    "not_media",
    "status",
    "unknown_type",
    "unsupported",
    "malformed",
    "no_media_id",
    "unknown_account",
    "wrong_app",
    "outbound_off",
    "other_field",
    "policy_type",
    "policy_mime",
]
"""Why a message (or a change) was not turned into work (docs/webhook.md, "What a webhook may
carry"):
`not_media`: text, location, reaction, ..., and edits of them;
`status`: a receipt of a message the business sent;
`unknown_type`: a type this release does not know;
`unsupported`: Meta could not deliver the message and said why (any type with `errors`), other
than a 131052 owed a reply;
`malformed`: a media message without a usable media id, wamid or phone_number_id, or a 131052
with nobody to answer;
`no_media_id`: a history message describing a media whose id comes in a later webhook;
`unknown_account`: a number no account of this deployment serves;
`wrong_app`: a number whose account does not accept the app that signed the webhook;
`outbound_off`: a media the business sent, for an account that does not archive those;
`other_field`: a change of another webhook field;
`policy_type`, `policy_mime`: a media of a type, or a MIME type, its account does not archive
(ARCHIVE_MEDIA_TYPES, ARCHIVE_MIME_TYPES, an account's `policy`): a `media.skipped` event
tells its consumers. (The worker skips by size, `policy_size`.)
"""
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)
# Skips of messages that looked like media: listed by `wa-media skipped` as well as counted.
LISTED_REASONS: frozenset[SkipReason] = frozenset(
    {
        "malformed",
        "no_media_id",
        "unknown_account",
        "wrong_app",
        "outbound_off",
        "policy_type",
        "policy_mime",
    }
)


@dataclass(frozen=True)
class Notice:
    """Something in the payload worth a log line: a reported error."""

    event: str
    detail: str
    wamid: str | None = None
    code: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A message (or change) not turned into work, and why."""

    reason: SkipReason
    detail: str = ""
    wamid: str | None = None
    phone_number_id: str | None = None
    type: str | None = None

    @property
    def listed(self) -> bool:
        """Whether it looked like media, so that `wa-media skipped` lists it."""
        return self.reason in LISTED_REASONS and (
            self.type in MEDIA_TYPES or self.type in (VOICE, EDIT, None)
        )


@dataclass(frozen=True)
class DroppedReply:
    """A 131052 warning owed but dropped, never to be sent, and why."""

    reason: ReplyDropReason
    wamid: str
    phone_number_id: str


@dataclass
class ParsedPayload:
    """What a payload asks of the workers, and what it only reports."""

    media: list[MediaJob] = field(default_factory=list)
    replies: list[ReplyJob] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    dropped_replies: list[DroppedReply] = field(default_factory=list)
    max_replies: int = DEFAULT_MAX_REPLIES
    """The warnings this request may owe at most; the ones past it are dropped."""
    events: list[Event] = field(default_factory=list)
    """What the consumers of the accounts are told of decisions taken here: media skipped by
    the policy, a 131052 whose warning the account does not send."""


@dataclass(frozen=True)
class _Change:
    """What a message of one change shares with the others."""

    phone_number_id: str | None
    waba_id: str | None
    business_number: str | None
    contacts: list[dict[str, Any]]
    received_at: int
    archives_outbound: bool
    policy: ArchivePolicy = DEFAULT_POLICY
    number_problem: str | None = None
    """Why the change has no usable phone_number_id, when it names a malformed one."""


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


def _shown(value: str) -> str:
    """A value that failed its check, as a log line or a terminal may show it: escaped, cut."""
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")


def _id(value: Any, rule: re.Pattern[str], name: str) -> str | None:
    """The id at `name`, None when absent; ValueError when present and not an id by `rule`."""
    text = _text(value)
    if value is None:
        return None
    if text is None or not rule.fullmatch(text) or set(text) == {"."}:
        shown = _shown(text) if text is not None else type(value).__name__
        raise ValueError(f"{name} is not {_ID_RULES[rule]}: {shown}")
    return text


def _checked_id(value: Any, rule: re.Pattern[str], name: str) -> tuple[str | None, str | None]:
    """(the id, None); (None, why it is unusable); (None, None) when absent."""
    try:
        return _id(value, rule, name), None
    except ValueError as exc:
        return None, str(exc)


def _usable(value: Any, rule: re.Pattern[str]) -> str | None:
    """The id, or None when absent or unusable (where it is only supplementary)."""
    text = _text(value)
    return text if text is not None and rule.fullmatch(text) and set(text) != {"."} else None


def _error_codes(errors: Any) -> list[int]:
    codes = []
    for error in _list(errors):
        code = ascii_int(_dict(error).get("code"))
        if code is not None:
            codes.append(code)
    return codes


def _timestamp(value: Any) -> int | None:
    seconds = ascii_int(value)
    return seconds if seconds is not None and seconds <= _LAST_SECOND else None


def _contact(contacts: list[dict[str, Any]], phone: str | None, user_id: str | None) -> Any:
    """The `contacts[]` entry of this customer: by phone or BSUID, or the only one there is."""
    for contact in contacts:
        if (phone and _text(contact.get("wa_id")) == phone) or (
            user_id and _text(contact.get("user_id")) == user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _customer(message: dict[str, Any], change: _Change, direction: Direction) -> Customer | None:
    """The customer's identity: the sender of an inbound message, the recipient of an echo.

    The message's own BSUIDs are ids (ValueError when malformed); what `contacts[]` adds is
    supplementary, and a malformed BSUID there is left out.
    """
    prefix = "from" if direction == "inbound" else "to"
    phone = _text(message.get(prefix))
    user_id = _id(message.get(f"{prefix}_user_id"), _BSUID, f"{prefix}_user_id")
    parent = _id(message.get(f"{prefix}_parent_user_id"), _BSUID, f"{prefix}_parent_user_id")
    contact = _dict(_contact(change.contacts, phone, user_id))
    customer = Customer(
        phone=phone or _text(contact.get("wa_id")),
        user_id=user_id or _usable(contact.get("user_id"), _BSUID),
        parent_user_id=parent or _usable(contact.get("parent_user_id"), _BSUID),
        username=_text(_dict(contact.get("profile")).get("username")),
    )
    return customer if customer != Customer() else None


def _digest(media: dict[str, Any], anomalies: list[Anomaly]) -> str | None:
    value = media.get("sha256")
    if value is None:
        anomalies.append("sha256_missing")
        return None
    try:
        if isinstance(value, str):
            return normalise_sha256(value)
    except ValueError:
        pass
    anomalies.append("sha256_malformed")
    return None


def _mime_type(media: dict[str, Any], anomalies: list[Anomaly]) -> str | None:
    value = media.get("mime_type")
    if value is None:
        anomalies.append("mime_type_missing")
        return None
    # Checked as S3 will take it as an object's Content-Type (wa_media/core/layout.py).
    if storable_mime_type(value) is not None:
        return str(value)
    anomalies.append("mime_type_malformed")
    return None


def _optional_text(
    media: dict[str, Any], name: str, limit: int, anomalies: list[Anomaly]
) -> str | None:
    """A caption or filename, cut to `limit` characters (`{name}_truncated`); anything but text
    is `{name}_malformed`."""
    value = media.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        anomalies.append("caption_malformed" if name == "caption" else "filename_malformed")
        return None
    if len(value) > limit:
        anomalies.append("caption_truncated" if name == "caption" else "filename_truncated")
        return value[:limit]
    return value


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _media_job(
    message: dict[str, Any],
    content: dict[str, Any],
    change: _Change,
    *,
    wamid: str,
    direction: Direction,
    source: Source,
    original_message_id: str | None = None,
) -> MediaJob:
    """A job from the message's envelope (`message`) and the media message (`content`, the
    message itself, or an edit's `edit.message`); ValueError or ValidationError if unusable."""
    wire_type = content["type"]
    kind: str = "audio" if wire_type == VOICE else wire_type
    media = _dict(content.get(wire_type))
    media_id = _id(media.get("id"), _KEY_ID, f"{wire_type}.id")
    if media_id is None:
        raise ValueError(f"no usable {wire_type}.id")
    anomalies: list[Anomaly] = []
    timestamp = _timestamp(message.get("timestamp"))
    if timestamp is None:
        anomalies.append("timestamp_malformed")
    caption = _optional_text(media, "caption", MAX_CAPTION, anomalies)
    # Only a document's is kept: another's is checked, never cut.
    kept = kind == "document"
    filename = _optional_text(media, "filename", MAX_FILENAME if kept else sys.maxsize, anomalies)
    url = media.get("url")
    return MediaJob.model_validate(
        {
            "phone_number_id": change.phone_number_id,
            "waba_id": change.waba_id,
            "wamid": wamid,
            "sender": _text(message.get("from")),
            "timestamp": change.received_at if timestamp is None else timestamp,
            "type": kind,
            "media_id": media_id,
            "mime_type": _mime_type(media, anomalies),
            "sha256": _digest(media, anomalies),
            "caption": caption,
            "filename": filename if kept else None,
            "voice": True if wire_type == VOICE else _flag(media.get("voice")),
            "animated": _flag(media.get("animated")) if kind == "sticker" else None,
            "customer": _customer(message, change, direction),
            "direction": direction,
            "source": source,
            "url": url if isinstance(url, str) and _URL.fullmatch(url) else None,
            "original_message_id": original_message_id,
            "received_at": change.received_at,
            "anomalies": tuple(anomalies),
        }
    )


def _type_skip(kind: Any) -> SkipReason:
    if isinstance(kind, str) and kind in KNOWN_NOT_MEDIA:
        return "unsupported" if kind == "unsupported" else "not_media"
    return "unknown_type"


def _too_big_reply(
    message: dict[str, Any], change: _Change, wamid: str | None, out: ParsedPayload
) -> None:
    number = change.phone_number_id
    if wamid and number and not change.policy.too_large_reply:
        # The account answers its customers itself: its consumers are told instead.
        try:
            told = _customer(message, change, "inbound")
        except ValueError:
            told = None
        out.dropped_replies.append(DroppedReply("reply_off", wamid, number))
        out.events.append(
            too_large_event(number, change.waba_id, wamid, told, at=float(change.received_at))
        )
        return
    try:
        customer = _customer(message, change, "inbound")
    except ValueError:
        # A BSUID that is no BSUID: nobody this service may write to.
        if wamid and number:
            out.dropped_replies.append(DroppedReply("invalid_recipient", wamid, number))
            return
        customer = None
    phone = customer.phone if customer else None
    bsuid = customer.user_id if customer else None
    if not (wamid and number and (phone or bsuid)):
        out.skipped.append(
            Skipped("malformed", "131052 without a wamid, number or customer", wamid, None, None)
        )
        return
    # Only a phone number or a BSUID is ever written to; a webhook owes a bounded number.
    to = phone_address(phone) if phone else None
    user_id = bsuid if to is None and bsuid and is_bsuid(bsuid) else None
    if to is None and user_id is None:
        out.dropped_replies.append(DroppedReply("invalid_recipient", wamid, number))
    elif len(out.replies) >= out.max_replies:
        out.dropped_replies.append(DroppedReply("request_cap", wamid, number))
    else:
        out.replies.append(
            ReplyJob(
                phone_number_id=number, wamid=wamid, to=to, recipient=user_id, error_code=TOO_BIG
            )
        )


def _parse_message(
    message: Any, change: _Change, direction: Direction, source: Source, out: ParsedPayload
) -> None:
    message = _dict(message)
    # A malformed message id is never recorded: a media (or a 131052) without a usable one is
    # skipped as `malformed`, any other message is counted as it would have been.
    wamid, wamid_problem = _checked_id(message.get("id"), _WAMID, "the message id")
    kind = message.get("type")
    number = change.phone_number_id

    codes = _error_codes(message.get("errors"))
    # Only a message arriving now is answered: history may be months old.
    if TOO_BIG in codes and direction == "inbound" and source == "messages":
        _too_big_reply(message, change, wamid, out)
        return
    for code in codes:
        out.notices.append(Notice("message_error", "inbound message error", wamid, code))

    content, original = message, None
    if kind == EDIT:
        edit = _dict(message.get(EDIT))
        content = _dict(edit.get("message"))
        original = _id(edit.get("original_message_id"), _WAMID, "edit.original_message_id")
        source = "edit"
        kind = content.get("type")
    if not isinstance(kind, str) or (kind not in MEDIA_TYPES and kind != VOICE):
        # Meta could not deliver it and said why (older webhooks call the type `unknown`).
        reason = "unsupported" if codes else _type_skip(kind)
        out.skipped.append(Skipped(reason, "", wamid, number, _type_name(kind)))
        return

    def skip(reason: SkipReason, detail: str) -> None:
        out.skipped.append(Skipped(reason, detail, wamid, number, kind))

    if source == "history" and not _text(_dict(content.get(kind)).get("id")):
        skip("no_media_id", "history describes the media; its id comes in a later webhook")
        return
    if number is None:
        skip("malformed", change.number_problem or "no metadata.phone_number_id")
        return
    if wamid is None:
        skip("malformed", wamid_problem or "no usable message id")
        return
    if direction == "outbound" and not change.archives_outbound:
        skip("outbound_off", "the account does not archive media the business sent")
        return
    try:
        job = _media_job(
            message,
            content,
            change,
            wamid=wamid,
            direction=direction,
            source=source,
            original_message_id=original,
        )
    except ValidationError as exc:
        skip("malformed", f"malformed {kind} message: {exc.errors()[0]['loc']}")
    except ValueError as exc:
        skip("malformed", f"malformed {kind} message: {exc}")
    else:
        verdict = change.policy.by_type(job.type, job.mime_type)
        if verdict is None:
            out.media.append(job)
            return
        skip("policy_type" if verdict.reason == "policy_type" else "policy_mime", verdict.detail)
        out.events.append(
            skipped_event(job, verdict.reason, verdict.detail, at=float(change.received_at))
        )


def _type_name(kind: Any) -> str | None:
    return kind[:32] if isinstance(kind, str) else None


def _each_message(
    messages: Any, change: _Change, direction: Direction, source: Source, out: ParsedPayload
) -> None:
    for message in _list(messages):
        try:
            _parse_message(message, change, direction, source, out)
        except (ValueError, TypeError) as exc:
            # Whatever one message holds, it must not cost the others their delivery. Listed
            # with its wamid only if that is one.
            wamid = _usable(_dict(message).get("id"), _WAMID)
            out.skipped.append(
                Skipped("malformed", f"unreadable message: {exc}", wamid, change.phone_number_id)
            )


def _history_messages(value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for chunk in _list(value.get("history")):
        for thread in _list(_dict(chunk).get("threads")):
            thread = _dict(thread)
            customer = _text(thread.get("id"))
            for message in _list(thread.get("messages")):
                message = _dict(message)
                # The thread names the customer; a message of theirs may leave `from` to it.
                if customer and "to" not in message and "from" not in message:
                    message = {**message, "from": customer}
                yield message


def _history_direction(message: dict[str, Any], business_number: str | None) -> Direction:
    sender = _text(message.get("from"))
    if "to" in message or (business_number is not None and sender == business_number):
        return "outbound"
    return "inbound"


def _parse_value(
    field_name: str, value: dict[str, Any], change: _Change, out: ParsedPayload
) -> None:
    if field_name == "messages":
        _each_message(value.get("messages"), change, "inbound", "messages", out)
    elif field_name == "smb_message_echoes":
        _each_message(value.get("message_echoes"), change, "outbound", "smb_message_echoes", out)
    elif field_name == "history":
        for message in _history_messages(value):
            direction = _history_direction(message, change.business_number)
            _each_message([message], change, direction, "history", out)
    for code in _error_codes(value.get("errors")):
        out.notices.append(Notice("account_error", "error reported for the account", code=code))
    for status in _list(value.get("statuses")):
        status = _dict(status)
        for code in _error_codes(status.get("errors")):
            out.notices.append(
                Notice("status_error", "error on a sent message", _text(status.get("id")), code)
            )
        out.skipped.append(Skipped("status", "", _text(status.get("id")), change.phone_number_id))


_FIELDS = ("messages", "smb_message_echoes", "history")


def _refused_change(
    field_name: str,
    value: dict[str, Any],
    number: str,
    out: ParsedPayload,
    reason: SkipReason = "unknown_account",
) -> None:
    """Skip every message of a change whose number is refused (no account serves it, or its
    account does not accept the webhook's signer), listing the media."""
    listed = {
        "messages": _list(value.get("messages")),
        "smb_message_echoes": _list(value.get("message_echoes")),
        "history": list(_history_messages(value)),
    }.get(field_name, [])
    for message in listed:
        message = _dict(message)
        kind = message.get("type")
        detail = (
            f"no account serves phone_number_id {number}"
            if reason == "unknown_account"
            else f"the account of phone_number_id {number} does not accept the signing app"
        )
        out.skipped.append(
            Skipped(
                reason,
                detail,
                _usable(message.get("id"), _WAMID),
                number,
                _type_name(kind),
            )
        )


def _from_partner_envelope(document: dict[str, Any]) -> dict[str, Any] | None:
    """360dialog's partner webhooks (`{"event": "history", "data": {...}}`) as Meta's envelope."""
    event, data = document.get("event"), document.get("data")
    if not (isinstance(event, str) and isinstance(data, dict)):
        return None
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": data.get("id"), "changes": [{"field": event, "value": data}]}],
    }


def parse_cloud_payload(
    document: Any,
    accepts: Callable[[str], bool] = lambda _: True,
    *,
    received_at: int = 0,
    archives_outbound: Callable[[str], bool] = lambda _: True,
    signed_for: Callable[[str], bool] = lambda _: True,
    max_replies: int = DEFAULT_MAX_REPLIES,
    policy_of: Callable[[str], ArchivePolicy] = lambda _: DEFAULT_POLICY,
) -> ParsedPayload:
    """Collect every media and every 131052 reply owed, across all entries and changes.

    Messages to a phone_number_id that `accepts` refuses are skipped (`unknown_account`): no
    account of this deployment archives them; those to a number `signed_for` refuses are
    skipped as `wrong_app`: the app that signed the webhook does not speak for that account.
    `received_at` is when the webhook arrived (Unix seconds), `archives_outbound` tells
    whether a number's account archives what it sent, `policy_of` its archive policy (the
    media types and MIME types it archives, whether it sends the 131052 warning); past
    `max_replies` warnings, the others are dropped (`request_cap`).
    """
    if isinstance(document, dict) and "object" not in document:
        document = _from_partner_envelope(document) or document
    if not (
        isinstance(document, dict)
        and document.get("object") == "whatsapp_business_account"
        and isinstance(document.get("entry"), list)
    ):
        raise NotWhatsAppPayload("not a whatsapp_business_account payload with an entry list")
    out = ParsedPayload(max_replies=max_replies)
    for entry in document["entry"]:
        entry = _dict(entry)
        waba_id = _text(entry.get("id"))
        for change in _list(entry.get("changes")):
            change = _dict(change)
            field_name = change.get("field", "messages")
            if field_name not in _FIELDS:
                out.skipped.append(Skipped("other_field", _type_name(field_name) or ""))
                continue
            value = _dict(change.get("value"))
            metadata = _dict(value.get("metadata"))
            number, problem = _checked_id(
                metadata.get("phone_number_id"), _KEY_ID, "metadata.phone_number_id"
            )
            if number is not None and not accepts(number):
                _refused_change(field_name, value, number, out)
                continue
            if number is not None and not signed_for(number):
                _refused_change(field_name, value, number, out, "wrong_app")
                continue
            context = _Change(
                phone_number_id=number,
                waba_id=waba_id,
                business_number=_text(metadata.get("display_phone_number")),
                contacts=[_dict(c) for c in _list(value.get("contacts"))],
                received_at=received_at,
                archives_outbound=number is None or archives_outbound(number),
                policy=DEFAULT_POLICY if number is None else policy_of(number),
                number_problem=problem,
            )
            _parse_value(field_name, value, context, out)
    return out


def parse_onprem_payload(
    document: Any,
    phone_number_id: str,
    *,
    received_at: int = 0,
    max_replies: int = DEFAULT_MAX_REPLIES,
    policy: ArchivePolicy = DEFAULT_POLICY,
) -> ParsedPayload:
    """Collect the media and replies of an On-Premises webhook, which names no phone number:
    `phone_number_id` is the account's, known from the URL's token; `policy` its archive
    policy."""
    if not (
        isinstance(document, dict)
        and any(isinstance(document.get(name), list) for name in _ONPREM_LISTS)
        and all(isinstance(document.get(name, []), list) for name in _ONPREM_LISTS)
    ):
        raise NotWhatsAppPayload(
            "not an On-Premises payload: expected top-level contacts, messages, statuses or "
            "errors lists"
        )
    out = ParsedPayload(max_replies=max_replies)
    context = _Change(
        phone_number_id=phone_number_id,
        waba_id=None,
        business_number=None,
        contacts=[_dict(c) for c in _list(document.get("contacts"))],
        received_at=received_at,
        archives_outbound=True,
        policy=policy,
    )
    _parse_value("messages", document, context, out)
    return out
