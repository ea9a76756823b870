"""The S3 archive layout (docs/s3-archive.md): keys, object headers and the sidecar."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from wa_media.core.errors import InvalidId
from wa_media.core.jobs import MediaJob

__all__ = [
    "EDIT_RECORD_INFIX",
    "EXTENSIONS",
    "MAX_MIME_TYPE",
    "SIDECAR_SCHEMA",
    "STORED_FALLBACK_TYPE",
    "build_key",
    "checked_id",
    "content_disposition",
    "edit_record",
    "edit_record_key",
    "extension_for",
    "object_disposition",
    "object_metadata",
    "renders_in_browser",
    "sidecar",
    "sidecar_key",
    "storable_mime_type",
]

# Keyed by MIME type without parameters. Covers the types WhatsApp accepts for images, video,
# audio, documents and stickers (docs/s3-archive.md lists them); never derived from the
# sender's filename or the host's mimetypes database, so keys are reproducible.
EXTENSIONS: dict[str, str] = {
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "text/plain": ".txt",
    "application/pdf": ".pdf",
    "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}

SIDECAR_SCHEMA = 2
# An edit that keeps its media (a new caption) is recorded at `{object key}.edit-{id}`: beside
# the object, and without the `.json` ending that marks a sidecar.
EDIT_RECORD_INFIX = ".edit-"

_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# A MIME type as an HTTP header may carry it (RFC 9110 media-type; RFC 6838's restricted names),
# in printable ASCII only: anything else, S3 (or botocore before it) refuses, and the write with
# it, for good. Parameters are `name=token` or `name="quoted"`.
MAX_MIME_TYPE = 255
_CHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # an RFC 9110 token
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_QUOTED = r'"(?:[ !#-\[\]-~]|\\[ -~])*"'
_PARAMETER = rf"{_CHARS}=(?:{_CHARS}|{_QUOTED})"
_MEDIA_TYPE = re.compile(rf"{_NAME}/{_NAME}(?: *;(?: *{_PARAMETER})?)*")
# What an object is stored as when no usable type is known.
STORED_FALLBACK_TYPE = "application/octet-stream"
# Types a browser shows without running anything: media, and plain text. Any other type (HTML,
# SVG, XML, JavaScript, other text/*, PDF, ...) is stored for download only.
_INLINE_TOPS = frozenset({"image", "audio", "video"})
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+,=@-]")
_FILENAME_MAX = 200
# Keeps the whole header under about 1,300 characters whatever the script of the name.
_ENCODED_MAX = 1000


def checked_id(name: str, value: str) -> str:
    """Return `value` if it may stand in an object key; InvalidId if not."""
    # Dots alone would read as "this folder" or "the parent" to consumers that map keys to paths.
    if not _ID.fullmatch(value) or set(value) == {"."}:
        raise InvalidId(f"{name} is not 1 to 128 of [A-Za-z0-9_.-]")
    return value


def storable_mime_type(value: object) -> str | None:
    """`value` when it may be sent as an object's Content-Type as it is: a well-formed MIME type
    of printable ASCII, at most MAX_MIME_TYPE characters; else None."""
    if isinstance(value, str) and len(value) <= MAX_MIME_TYPE and _MEDIA_TYPE.fullmatch(value):
        return value
    return None


def renders_in_browser(mime_type: str) -> bool:
    """Whether a browser opening an object of this type could render or run it (HTML, SVG,
    XML, scripts, text other than plain, ...): everything but images, audio, video and plain
    text, and any `+xml` or SVG among those."""
    base = base_mime_type(mime_type)
    top, _, sub = base.partition("/")
    if base == "text/plain":
        return False
    return top not in _INLINE_TOPS or "xml" in sub or "svg" in sub


def object_disposition(job: MediaJob, stored_type: str) -> str | None:
    """The object's Content-Disposition: documents are attachments under their filename; any
    other media is one when its stored type would render in a browser; else none."""
    if job.type == "document":
        return content_disposition(job.filename)
    return "attachment" if renders_in_browser(stored_type) else None


def base_mime_type(mime_type: str) -> str:
    """`audio/ogg; codecs=opus` → `audio/ogg`."""
    return mime_type.split(";", 1)[0].strip().lower()


def extension_for(mime_type: str | None) -> str:
    """The key's extension for a MIME type, `.bin` when the table does not know it (or the
    webhook declared none)."""
    return EXTENSIONS.get(base_mime_type(mime_type), ".bin") if mime_type else ".bin"


def build_key(
    prefix: str, phone_number_id: str, timestamp: int, media_id: str, mime_type: str | None
) -> str:
    """`{prefix}/{phone_number_id}/{YYYY}/{MM}/{DD}/{media_id}{ext}`; InvalidId on bad ids."""
    checked_id("phone_number_id", phone_number_id)
    checked_id("media_id", media_id)
    day = datetime.fromtimestamp(timestamp, UTC)
    key = f"{phone_number_id}/{day:%Y/%m/%d}/{media_id}{extension_for(mime_type)}"
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def sidecar_key(object_key: str) -> str:
    """Where the sidecar of an object lives."""
    return object_key + ".json"


def _ascii_filename(filename: str) -> str:
    decomposed = unicodedata.normalize("NFKD", filename)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    cleaned = _FILENAME_UNSAFE.sub("_", ascii_only).strip(" .")
    return cleaned[:_FILENAME_MAX] or "file"


def content_disposition(filename: str | None) -> str:
    """`attachment` with an ASCII filename and, for other scripts, an RFC 5987 `filename*`."""
    if not filename:
        return "attachment"
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")[:_FILENAME_MAX]
    fallback = _ascii_filename(name)
    header = f'attachment; filename="{fallback}"'
    if name and name != fallback:
        header += f"; filename*=UTF-8''{_quoted_within(name, _ENCODED_MAX)}"
    return header


def _quoted_within(name: str, limit: int) -> str:
    """Percent-encode the longest start of `name` whose encoding fits in `limit` characters."""
    encoded = quote(name, safe="")
    while len(encoded) > limit:
        name = name[: len(name) * limit // len(encoded) or len(name) - 1]
        encoded = quote(name, safe="")
    return encoded


def _header_safe(value: str) -> str:
    """S3 user metadata travels as HTTP headers: printable ASCII only."""
    return "".join(ch if " " <= ch <= "~" else "_" for ch in value)[:256]


def edit_record_key(object_key: str, wamid: str) -> str:
    """Where an edit of an archived media's message is recorded: named by the edit's wamid
    (hashed, as wamids may hold `/` and `+`)."""
    return f"{object_key}{EDIT_RECORD_INFIX}{hashlib.sha256(wamid.encode()).hexdigest()[:32]}"


def object_metadata(job: MediaJob, sha256_hex: str) -> dict[str, str]:
    """The object's user metadata: sha256 (hex), wamid, from (when the message has one),
    media-type, and from the second release direction and, for a customer known by it, their
    BSUID (user-id)."""
    metadata = {
        "sha256": sha256_hex,
        "wamid": _header_safe(job.wamid),
        "media-type": job.type,
        "direction": job.direction,
    }
    if job.sender:
        metadata["from"] = _header_safe(job.sender)
    if job.customer is not None and job.customer.user_id:
        metadata["user-id"] = _header_safe(job.customer.user_id)
    return metadata


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _customer(job: MediaJob) -> dict[str, str | None]:
    customer = job.customer
    return {
        "phone": customer.phone if customer else None,
        "user_id": customer.user_id if customer else None,
        "parent_user_id": customer.parent_user_id if customer else None,
        "username": customer.username if customer else None,
    }


def sidecar(
    job: MediaJob,
    *,
    bucket: str,
    key: str,
    sha256_hex: str,
    size: int,
    lookup: dict[str, Any],
    archived_at: datetime,
    mime_type: str | None = None,
    url_source: str | None = None,
    anomalies: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The sidecar document (schema 2: every field of schema 1, then the second release's).

    `mime_type` is what the object was stored as (the webhook's, else the look-up's);
    `url_source` where the download URL came from (`webhook`, `lookup`, or None for a provider
    that serves bytes by id); `anomalies` adds what the try found to what the webhook had.
    """
    return {
        "schema": SIDECAR_SCHEMA,
        "media_id": job.media_id,
        "phone_number_id": job.phone_number_id,
        "waba_id": job.waba_id,
        "wamid": job.wamid,
        "from": job.sender,
        "timestamp": job.timestamp,
        "type": job.type,
        "caption": job.caption,
        "filename": job.filename,
        "voice": job.voice,
        "animated": job.animated,
        "mime_type": mime_type or job.mime_type,
        "sha256": sha256_hex,
        "size": size,
        "bucket": bucket,
        "key": key,
        "archived_at": _utc(archived_at),
        "lookup": {name: value for name, value in lookup.items() if name != "url"},
        "direction": job.direction,
        "source": job.source,
        "customer": _customer(job),
        "url_source": url_source,
        "original_message_id": job.original_message_id,
        "received_at": job.received_at,
        "anomalies": sorted({*job.anomalies, *anomalies}),
    }


def edit_record(job: MediaJob, *, object_key: str, recorded_at: datetime) -> dict[str, Any]:
    """What another message bringing an archived media says: an edit that kept it (`kind`
    `edit`: the edit's wamid, the message it edits, the new caption), or the message an edit
    of it archived first (`kind` `message`); when it was made and when it was recorded."""
    return {
        "schema": SIDECAR_SCHEMA,
        "kind": "edit" if job.original_message_id else "message",
        "media_id": job.media_id,
        "key": object_key,
        "wamid": job.wamid,
        "original_message_id": job.original_message_id,
        "caption": job.caption,
        "timestamp": job.timestamp,
        "customer": _customer(job),
        "recorded_at": _utc(recorded_at),
    }
