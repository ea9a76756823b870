"""Builders of webhook payloads and their signatures (pure: no I/O).

The Cloud API's (also 360dialog's) `entry`/`changes` envelope, and the On-Premises API's
top-level `{"contacts", "messages", ...}` one, whose media carry a hex `sha256` and no `url`.
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
    "MediaKind",
    "encode",
    "envelope",
    "error_object",
    "media_message",
    "new_onprem_id",
    "new_wamid",
    "onprem_envelope",
    "onprem_media_message",
    "sign",
    "signed",
    "status_update",
    "text_message",
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
    recipient: str = DEFAULT_SENDER,
    timestamp: int | str | None = None,
    errors: Sequence[Json] | None = None,
) -> Json:
    """Build one `statuses[]` entry: a delivery receipt of a message we sent."""
    update: Json = {
        "id": wamid,
        "status": status,
        "timestamp": _timestamp(timestamp),
        "recipient_id": recipient,
    }
    if errors is not None:
        update["errors"] = list(errors)
    return update


def _contacts(messages: Iterable[Json]) -> list[Json]:
    senders = dict.fromkeys(str(m["from"]) for m in messages if "from" in m)
    return [{"profile": {"name": f"Customer {wa_id}"}, "wa_id": wa_id} for wa_id in senders]


def envelope(
    messages: Sequence[Json],
    *,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    waba_id: str = DEFAULT_WABA_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    statuses: Sequence[Json] | None = None,
    errors: Sequence[Json] | None = None,
) -> Json:
    """Wrap messages, statuses and errors in a full Cloud API webhook payload."""
    value: Json = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    # Like Meta, a payload without messages (e.g. only statuses) has no contacts/messages keys.
    if messages:
        value["contacts"] = _contacts(messages)
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = list(statuses)
    if errors is not None:
        value["errors"] = list(errors)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}],
    }


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
