"""Builders of webhook payloads and their signatures (pure: no I/O).

The Cloud API's (also 360dialog's) `entry`/`changes` envelope, and the On-Premises API's
top-level `{"contacts", "messages", ...}` one, whose media carry a hex `sha256` and no `url`.

The Cloud API's shapes: messages of the `messages` field (media with or without the `url`
webhooks carry from v24.0, customers named by phone number and/or business-scoped user id,
edits, unsupported types with their errors, types no release knows yet), statuses, echoes of
what the business sent from the WhatsApp Business app (`smb_message_echoes`), shared chat
history (`history`, its media first without ids), 360dialog's partner envelope of a change, and
fields no release knows.
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
    "DEFAULT_PARENT_USER_ID",
    "DEFAULT_PHONE_NUMBER_ID",
    "DEFAULT_SENDER",
    "DEFAULT_USER_ID",
    "DEFAULT_WABA_ID",
    "MEDIA_KINDS",
    "MediaKind",
    "contact",
    "echo_message",
    "echoes_envelope",
    "edit_message",
    "encode",
    "envelope",
    "error_object",
    "field_envelope",
    "from_user",
    "future_message",
    "history_chunk",
    "history_envelope",
    "history_message",
    "history_thread",
    "media_message",
    "new_onprem_id",
    "new_wamid",
    "onprem_envelope",
    "onprem_media_message",
    "partner_envelope",
    "set_media",
    "sign",
    "signed",
    "status_update",
    "text_message",
    "too_big_message",
    "unsupported_message",
    "with_unknown_fields",
    "without_media_id",
]

Json = dict[str, Any]
MediaKind = Literal["image", "video", "audio", "voice", "document", "sticker"]
MEDIA_KINDS: tuple[MediaKind, ...] = get_args(MediaKind)

DEFAULT_SENDER = "16505551234"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550783881"
# The examples of Meta's "Business-scoped user IDs" page.
DEFAULT_USER_ID = "US.13491208655302741918"
DEFAULT_PARENT_USER_ID = "US.ENT.11815799212886844830"

TOO_BIG_CODE = 131052
TOO_BIG_TITLE = "Media file size too big"
TOO_BIG_DETAILS = (
    "Media file size too big. Max file size we currently support: 100MB. "
    "Please communicate with your customer to send a file of smaller size."
)

UNKNOWN_TYPE_CODE = 131051
UNKNOWN_TYPE_TITLE = "Message type unknown"
UNKNOWN_TYPE_DETAILS = "Message type is currently not supported."

_CAPTIONED: frozenset[str] = frozenset({"image", "video", "document"})


def sign(body: bytes, secret: str) -> str:
    """Return the `X-Hub-Signature-256` header value for a raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode(payload: Json) -> bytes:
    """Serialise a payload as compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(payload: Json, secret: str) -> tuple[bytes, dict[str, str]]:
    """Return the encoded body and the headers Meta would send with it."""
    body = encode(payload)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def new_wamid() -> str:
    """Return a fresh, unique WhatsApp message id shaped like Meta's."""
    token = base64.b64encode(secrets.token_bytes(27)).decode()
    return f"wamid.HBgL{token}"


def new_onprem_id() -> str:
    """Return a fresh inbound On-Premises message id shaped like its documents' (`ABGG...`)."""
    return "ABGG" + secrets.token_urlsafe(24)


def _timestamp(value: int | str | None) -> str:
    # Meta sends Unix seconds as a string, never as a number.
    return str(int(time.time()) if value is None else int(value))


def _base(sender: str, wamid: str | None, timestamp: int | str | None, kind: str) -> Json:
    return {
        "from": sender,
        "id": wamid or new_wamid(),
        "timestamp": _timestamp(timestamp),
        "type": kind,
    }


def _check_media(kind: str, caption: str | None, filename: str | None) -> None:
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

    `url`: the download URL Cloud API webhooks carry from v24.0 on (`SimulatorClient.download_url`
    mints one); left out, the message is as earlier versions send it.
    """
    _check_media(kind, caption, filename)
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
    if url is not None:
        media["url"] = url
    message = _base(sender, wamid, timestamp, wire_type)
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
    message = _base(sender, wamid, timestamp, "unsupported")
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
    message = _base(sender, wamid, timestamp, "text")
    message["text"] = {"body": body}
    return message


def status_update(
    wamid: str,
    *,
    status: str = "delivered",
    recipient: str | None = DEFAULT_SENDER,
    timestamp: int | str | None = None,
    errors: Sequence[Json] | None = None,
    recipient_user_id: str | None = None,
) -> Json:
    """Build one `statuses[]` entry: a delivery receipt of a message we sent.

    `recipient` is the customer's phone number (`recipient_id`), None for a customer who shares
    none; `recipient_user_id` their BSUID.
    """
    update: Json = {"id": wamid, "status": status, "timestamp": _timestamp(timestamp)}
    if recipient is not None:
        update["recipient_id"] = recipient
    if recipient_user_id is not None:
        update["recipient_user_id"] = recipient_user_id
    if errors is not None:
        update["errors"] = list(errors)
    return update


def _contacts(messages: Iterable[Json]) -> list[Json]:
    senders: dict[tuple[Any, Any, Any], None] = {}
    for m in messages:
        if "from" not in m and "from_user_id" not in m:
            continue
        sender = (m.get("from"), m.get("from_user_id"), m.get("from_parent_user_id"))
        # Hostile tests give these fields any JSON value; a profile is made of strings only.
        if all(value is None or isinstance(value, str) for value in sender):
            senders.setdefault(sender, None)
    return [
        contact(wa_id=wa_id, user_id=user_id, parent_user_id=parent)
        for wa_id, user_id, parent in senders
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


def from_user(
    message: Json,
    user_id: str = DEFAULT_USER_ID,
    *,
    parent_user_id: str | None = None,
    phone: bool = True,
) -> Json:
    """`message` as sent by a customer Meta also names by BSUID: `from_user_id` (and
    `from_parent_user_id`) beside `from`, or instead of it (`phone=False`) for a user who
    adopted a username and shares no phone number with the business."""
    sent = dict(message)
    if not phone:
        sent.pop("from", None)
    sent["from_user_id"] = user_id
    if parent_user_id is not None:
        sent["from_parent_user_id"] = parent_user_id
    return sent


def _value(phone_number_id: str, display_phone_number: str) -> Json:
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
    value = _value(phone_number_id, display_phone_number)
    # Like Meta, a payload without messages (e.g. only statuses) has no contacts/messages keys.
    if messages:
        value["contacts"] = _contacts(messages) if contacts is None else list(contacts)
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = list(statuses)
    if errors is not None:
        value["errors"] = list(errors)
    return field_envelope("messages", value, waba_id=waba_id)


def set_media(message: Json, **fields: Any) -> Json:
    """A copy of a media message with fields of its media object set, e.g. `animated=True` for
    an animated sticker."""
    kind = message["type"]
    return {**message, kind: {**message[kind], **fields}}


def unsupported_message(
    unsupported_type: str = "poll_creation",
    *,
    code: int = UNKNOWN_TYPE_CODE,
    title: str = UNKNOWN_TYPE_TITLE,
    details: str = UNKNOWN_TYPE_DETAILS,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
) -> Json:
    """Build an `unsupported` message: a type Cloud API cannot deliver, with its error (131051,
    message type unknown, unless told otherwise) and `unsupported.type` naming what it was."""
    message = _base(sender, wamid, timestamp, "unsupported")
    message["errors"] = [error_object(code, title, details=details)]
    message["unsupported"] = {"type": unsupported_type}
    return message


def future_message(
    kind: str,
    content: Json | None = None,
    *,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
) -> Json:
    """Build a message of a type no release knows yet: Meta adds types, each with its object
    under the type's name."""
    message = _base(sender, wamid, timestamp, kind)
    message[kind] = {"id": secrets.token_hex(8)} if content is None else content
    return message


def edit_message(
    original_message_id: str,
    message: Json,
    *,
    sender: str = DEFAULT_SENDER,
    wamid: str | None = None,
    timestamp: int | str | None = None,
) -> Json:
    """Build the `edit` a customer makes of an earlier message: the edit has its own wamid, and
    `edit.message` is the new content, `message` (e.g. from `media_message`: a new media id, or
    the same one with a new caption) without its own `from`, `id` and `timestamp`, with
    `context.id` naming the original."""
    kind = message["type"]
    content: Json = {"context": {"id": original_message_id}, "type": kind, kind: message[kind]}
    edit = _base(sender, wamid, timestamp, "edit")
    edit["edit"] = {"original_message_id": original_message_id, "message": content}
    return edit


def echo_message(
    message: Json,
    *,
    to: str | None = DEFAULT_SENDER,
    to_user_id: str | None = None,
    to_parent_user_id: str | None = None,
    business_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
) -> Json:
    """`message` as the business sent it from the WhatsApp Business app (coexistence), echoed
    in `smb_message_echoes`: `from` is the business's display number, `to` the customer (None
    for a customer without a phone number), `to_user_id` their BSUID."""
    echo = {key: value for key, value in message.items() if not key.startswith("from")}
    echo["from"] = business_number
    for field_name, value in (
        ("to", to),
        ("to_user_id", to_user_id),
        ("to_parent_user_id", to_parent_user_id),
    ):
        if value is not None:
            echo[field_name] = value
    return echo


def echoes_envelope(
    echoes: Sequence[Json],
    *,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    waba_id: str = DEFAULT_WABA_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
) -> Json:
    """Wrap echoes (from `echo_message`) in an `smb_message_echoes` webhook payload."""
    value = _value(phone_number_id, display_phone_number)
    value["message_echoes"] = list(echoes)
    return field_envelope("smb_message_echoes", value, waba_id=waba_id)


def history_message(
    message: Json,
    *,
    status: str = "READ",
    to: str | None = None,
    business_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
) -> Json:
    """One message of a shared chat history: `message` with its `history_context`. A message
    the business sent names the customer in `to`, and its `from` is the business's number."""
    shared = dict(message)
    if to is not None:
        shared["from"] = business_number
        shared["to"] = to
    shared["history_context"] = {"status": status}
    return shared


def without_media_id(message: Json) -> Json:
    """How the first history webhooks describe a media: its object without the media `id` (nor
    a `url`); the id comes in a later webhook, for media within 14 days of onboarding only."""
    kind = message["type"]
    media = {k: v for k, v in message[kind].items() if k not in ("id", "url")}
    return {**message, kind: media}


def history_thread(customer: str, messages: Sequence[Json]) -> Json:
    """One chat of the history: `id` is the customer's phone number."""
    return {"id": customer, "messages": list(messages)}


def history_chunk(
    threads: Sequence[Json], *, phase: int = 0, chunk_order: int = 1, progress: int = 100
) -> Json:
    """One `history[]` entry: the chunk's place in the synchronisation and its threads."""
    return {
        "metadata": {"phase": phase, "chunk_order": chunk_order, "progress": progress},
        "threads": list(threads),
    }


def history_envelope(
    chunks: Sequence[Json],
    *,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    waba_id: str = DEFAULT_WABA_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
) -> Json:
    """Wrap history chunks in a `history` webhook payload."""
    value = _value(phone_number_id, display_phone_number)
    value["history"] = list(chunks)
    return field_envelope("history", value, waba_id=waba_id)


def partner_envelope(payload: Json, *, event_id: str | None = None) -> Json:
    """360dialog's partner webhook for the one change of a Cloud API payload (e.g. `history`):
    `{"id": <event id>, "event": <field>, "data": <the change's value with the WABA id>}`."""
    [entry] = payload["entry"]
    [change] = entry["changes"]
    return {
        "id": event_id or secrets.token_hex(16),
        "event": change["field"],
        "data": {"id": entry["id"], **change["value"]},
    }


def with_unknown_fields(payload: Json, name: str = "x_future_field") -> Json:
    """A copy of a payload with a field no release knows added to every object in it: the
    payload, each entry, change, value and metadata, each contact, message, media object and
    status. Values of the known fields stay as they are."""

    def add(node: Any) -> Any:
        if isinstance(node, dict):
            copied = {key: add(value) for key, value in node.items()}
            copied[name] = {"added_by": "a later Graph API version"}
            return copied
        if isinstance(node, list):
            return [add(item) for item in node]
        return node

    marked: Json = add(payload)
    return marked


def onprem_media_message(
    kind: MediaKind,
    media_id: str,
    *,
    sha256_hex: str,
    mime_type: str,
    sender: str = DEFAULT_SENDER,
    message_id: str | None = None,
    timestamp: int | str | None = None,
    caption: str | None = None,
    filename: str | None = None,
) -> Json:
    """Build an inbound On-Premises media message: `{id, mime_type, sha256 (hex)}`, no `url`.

    A voice note is its own type there (`"type": "voice"`), not audio with a flag.
    """
    _check_media(kind, caption, filename)
    media: Json = {"id": media_id, "mime_type": mime_type, "sha256": sha256_hex}
    if kind == "document":
        media["filename"] = filename if filename is not None else f"file-{media_id}"
    if caption is not None:
        media["caption"] = caption
    message = _base(sender, message_id or new_onprem_id(), timestamp, kind)
    message[kind] = media
    return message


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
