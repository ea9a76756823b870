"""Webhook payloads for the tests, the demo and the benchmarks (pure: no I/O).

The product's builders (wa_media/cli/payloads.py: what `wa-media simulate` sends), re-exported
here, and the shapes only the tests and the demo send. The Cloud API's: statuses, customers
named by business-scoped user id, edits, unsupported types with their errors, types no release
knows yet, echoes of what the business sent from the WhatsApp Business app
(`smb_message_echoes`), shared chat history (`history`, its media first without ids),
360dialog's partner envelope of a change, and fields no release knows. The On-Premises API's
media messages, which carry a hex `sha256` and no `url`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from wa_media.cli.payloads import (
    DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_SENDER,
    DEFAULT_WABA_ID,
    MEDIA_KINDS,
    Json,
    MediaKind,
    change_value,
    check_media,
    contact,
    encode,
    envelope,
    error_object,
    field_envelope,
    media_message,
    message_head,
    new_wamid,
    onprem_envelope,
    sign,
    text_message,
    timestamp_text,
    too_big_message,
)

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

# The examples of Meta's "Business-scoped user IDs" page.
DEFAULT_USER_ID = "US.13491208655302741918"
DEFAULT_PARENT_USER_ID = "US.ENT.11815799212886844830"

UNKNOWN_TYPE_CODE = 131051
UNKNOWN_TYPE_TITLE = "Message type unknown"
UNKNOWN_TYPE_DETAILS = "Message type is currently not supported."


def signed(payload: Json, secret: str) -> tuple[bytes, dict[str, str]]:
    """Return the encoded body and the headers Meta would send with it."""
    body = encode(payload)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def new_onprem_id() -> str:
    """Return a fresh inbound On-Premises message id shaped like its documents' (`ABGG...`)."""
    return "ABGG" + secrets.token_urlsafe(24)


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
    update: Json = {"id": wamid, "status": status, "timestamp": timestamp_text(timestamp)}
    if recipient is not None:
        update["recipient_id"] = recipient
    if recipient_user_id is not None:
        update["recipient_user_id"] = recipient_user_id
    if errors is not None:
        update["errors"] = list(errors)
    return update


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
    message = message_head(sender, wamid, timestamp, "unsupported")
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
    message = message_head(sender, wamid, timestamp, kind)
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
    edit = message_head(sender, wamid, timestamp, "edit")
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
    value = change_value(phone_number_id, display_phone_number)
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
    value = change_value(phone_number_id, display_phone_number)
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
    check_media(kind, caption, filename)
    media: Json = {"id": media_id, "mime_type": mime_type, "sha256": sha256_hex}
    if kind == "document":
        media["filename"] = filename if filename is not None else f"file-{media_id}"
    if caption is not None:
        media["caption"] = caption
    message = message_head(sender, message_id or new_onprem_id(), timestamp, kind)
    message[kind] = media
    return message
