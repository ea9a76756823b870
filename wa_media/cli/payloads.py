"""The webhook payloads `wa-media simulate` sends, shaped and signed as Meta's (pure: no I/O).

Inbound text, media and too-big (`unsupported`, 131052) messages, in the Cloud API's (also
360dialog's) `entry`/`changes` envelope or the On-Premises API's top-level
`{"contacts", "messages", ...}` one. The tests, the demo and the benchmarks build theirs from
these too (devstack/webhooks.py adds the shapes only they send).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

__all__ = [
    "DEFAULT_DISPLAY_PHONE_NUMBER",
    "DEFAULT_PHONE_NUMBER_ID",
    "DEFAULT_SENDER",
    "DEFAULT_WABA_ID",
    "MEDIA_KINDS",
    "Json",
    "MediaKind",
    "change_value",
    "check_media",
    "contact",
    "encode",
    "envelope",
    "error_object",
    "field_envelope",
    "media_message",
    "message_head",
    "new_wamid",
    "onprem_envelope",
    "sign",
    "text_message",
    "timestamp_text",
    "too_big_message",
]

Json = dict[str, Any]
MediaKind = Literal["image", "video", "audio", "voice", "document", "sticker"]
MEDIA_KINDS: tuple[MediaKind, ...] = get_args(MediaKind)

DEFAULT_SENDER = "16505551234"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550783881"

TOO_BIG_CODE = 131052
TOO_BIG_TITLE = "Media file size too big"
TOO_BIG_DETAILS = (
    "Media file size too big. Max file size we currently support: 100MB. "
    "Please communicate with your customer to send a file of smaller size."
)

_CAPTIONED: frozenset[str] = frozenset({"image", "video", "document"})


def sign(body: bytes, secret: str) -> str:
    """Return the `X-Hub-Signature-256` header value for a raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode(payload: Json) -> bytes:
    """Serialise a payload as compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


def new_wamid() -> str:
    """Return a fresh, unique WhatsApp message id shaped like Meta's."""
    token = base64.b64encode(secrets.token_bytes(27)).decode()
    return f"wamid.HBgL{token}"


def timestamp_text(value: int | str | None) -> str:
    """A message's `timestamp`: Unix seconds (now unless given) as a string, as Meta sends it."""
    return str(int(time.time()) if value is None else int(value))


def message_head(
    sender: str, message_id: str | None, timestamp: int | str | None, kind: str
) -> Json:
    """The fields every inbound message starts with; a fresh wamid unless `message_id` is given."""
    return {
        "from": sender,
        "id": message_id or new_wamid(),
        "timestamp": timestamp_text(timestamp),
        "type": kind,
    }


def check_media(kind: str, caption: str | None, filename: str | None) -> None:
    """Raise ValueError for a media message no client sends: an unknown kind, a caption on a
    kind without one, a filename on anything but a document."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    if caption is not None and kind not in _CAPTIONED:
        raise ValueError(f"a {kind} message carries no caption")
    if filename is not None and kind != "document":
        raise ValueError("only a document carries a filename")


def media_message(
    kind: MediaKind,
    media_id: str,
    *,
    sha256_b64: str,
    mime_type: str,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    url: str | None = None,
) -> Json:
    """Build an inbound media message of one of `MEDIA_KINDS`.

    `url`: the download URL Cloud API webhooks carry from v24.0 on; left out, the message is as
    earlier versions send it.
    """
    check_media(kind, caption, filename)
    wire_type = "audio" if kind == "voice" else kind
    media: Json = {"id": media_id, "mime_type": mime_type, "sha256": sha256_b64}
    if url is not None:
        media["url"] = url
    if kind in ("audio", "voice"):
        media["voice"] = kind == "voice"
    if kind == "sticker":
        media["animated"] = False
    if kind == "document":
        media["filename"] = filename if filename is not None else f"file-{media_id}"
    if caption is not None:
        media["caption"] = caption
    message = message_head(sender, wamid, timestamp, wire_type)
    message[wire_type] = media
    return message


def error_object(
    code: int, title: str, *, message: str | None = None, details: str | None = None
) -> Json:
    """Build one entry of a webhook `errors` list."""
    error: Json = {"code": code, "title": title, "message": message or title}
    if details is not None:
        error["error_data"] = {"details": details}
    return error


def too_big_message(
    *,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
) -> Json:
    """Build the `unsupported` message Meta sends for media over 100 MB (code 131052)."""
    message = message_head(sender, wamid, timestamp, "unsupported")
    message["errors"] = [error_object(TOO_BIG_CODE, TOO_BIG_TITLE, details=TOO_BIG_DETAILS)]
    return message


def text_message(
    body: str,
    *,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
) -> Json:
    """Build an inbound text message."""
    message = message_head(sender, wamid, timestamp, "text")
    message["text"] = {"body": body}
    return message


def _contacts(messages: Iterable[Json]) -> list[Json]:
    # Keyed by their JSON: a hostile test's sender may be any JSON value, a list included.
    senders: dict[str, tuple[Any, Any, Any]] = {}
    for m in messages:
        if "from" in m or "from_user_id" in m:
            ids = (m.get("from"), m.get("from_user_id"), m.get("from_parent_user_id"))
            senders.setdefault(json.dumps(ids, sort_keys=True, default=repr), ids)
    return [
        contact(wa_id=wa_id, user_id=user_id, parent_user_id=parent)
        for wa_id, user_id, parent in senders.values()
    ]


def contact(
    *,
    wa_id: str | None = None,
    user_id: str | None = None,
    parent_user_id: str | None = None,
    username: str | None = None,
    name: str | None = None,
) -> Json:
    """One `contacts[]` entry: the profile (with the `username` of a user who adopted one), the
    phone number (`wa_id`, absent for a user who shares none), the BSUID (`user_id`) and, where
    parent BSUIDs are enabled, the parent BSUID (`parent_user_id`)."""
    profile: Json = {"name": name or f"Customer {wa_id or user_id}"}
    if username is not None:
        profile["username"] = username
    entry: Json = {"profile": profile}
    for field_name, value in (
        ("wa_id", wa_id),
        ("user_id", user_id),
        ("parent_user_id", parent_user_id),
    ):
        if value is not None:
            entry[field_name] = value
    return entry


def change_value(phone_number_id: str, display_phone_number: str) -> Json:
    """The start of a Cloud API change's `value`: its product and the number's metadata."""
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }


def field_envelope(field_name: str, value: Json, *, waba_id: str = DEFAULT_WABA_ID) -> Json:
    """Wrap one change of webhook field `field_name` in a Cloud API payload."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": field_name, "value": value}]}],
    }


def envelope(
    messages: Sequence[Json],
    *,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    waba_id: str = DEFAULT_WABA_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    statuses: Sequence[Json] | None = None,
    errors: Sequence[Json] | None = None,
    contacts: Sequence[Json] | None = None,
) -> Json:
    """Wrap messages, statuses and errors in a full Cloud API webhook payload.

    `contacts` defaults to one entry per sender (phone number and BSUIDs as the messages give
    them); pass entries made by `contact` for profiles with usernames.
    """
    value = change_value(phone_number_id, display_phone_number)
    # Like Meta, a payload without messages (e.g. only statuses) has no contacts/messages keys.
    if messages:
        value["contacts"] = _contacts(messages) if contacts is None else list(contacts)
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = list(statuses)
    if errors is not None:
        value["errors"] = list(errors)
    return field_envelope("messages", value, waba_id=waba_id)


def onprem_envelope(
    messages: Sequence[Json],
    statuses: Sequence[Json] | None = None,
    errors: Sequence[Json] | None = None,
) -> Json:
    """Wrap messages, statuses and errors in an On-Premises webhook payload (no metadata)."""
    payload: Json = {}
    if messages:
        payload["contacts"] = _contacts(messages)
        payload["messages"] = list(messages)
    if statuses is not None:
        payload["statuses"] = list(statuses)
    if errors is not None:
        payload["errors"] = list(errors)
    return payload
