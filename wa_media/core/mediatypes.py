"""The media types WhatsApp accepts for upload and their size limits (pure).

From "Supported media types" in Meta's Cloud API media guide: audio 16 MB (aac, amr, mpeg,
mp4, and ogg with the Opus codec only), documents 100 MB, images 5 MB (jpeg, png), stickers
100 KB static and 500 KB animated (webp), video 16 MB (mp4, 3gpp).
"""

from __future__ import annotations

from pathlib import PurePath
from types import MappingProxyType
from typing import Literal

from wa_media.core.errors import MediaRejected
from wa_media.core.layout import EXTENSIONS, base_mime_type

__all__ = [
    "LIMITS",
    "MAX_UPLOAD_SIZE",
    "OGG_OPUS",
    "RESUMABLE_TYPES",
    "UPLOAD_TYPES",
    "Category",
    "MediaRejected",
    "guess_mime_type",
    "resumable_problem",
    "upload_problem",
]

Category = Literal["audio", "document", "image", "sticker", "video"]

OGG_OPUS = "audio/ogg; codecs=opus"

KB = 1024
MB = 1024 * KB
MAX_UPLOAD_SIZE = 100 * MB
STATIC_STICKER_LIMIT = 100 * KB

# A sticker's limit is the animated one; a static sticker gets STATIC_STICKER_LIMIT.
LIMITS: MappingProxyType[Category, int] = MappingProxyType(
    {"audio": 16 * MB, "document": 100 * MB, "image": 5 * MB, "sticker": 500 * KB, "video": 16 * MB}
)

_BY_CATEGORY: dict[Category, tuple[str, ...]] = {
    "audio": ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
    "document": (
        "text/plain",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    "image": ("image/jpeg", "image/png"),
    "sticker": ("image/webp",),
    "video": ("video/3gpp", "video/mp4"),
}

UPLOAD_TYPES: MappingProxyType[str, Category] = MappingProxyType(
    {mime: category for category, types in _BY_CATEGORY.items() for mime in types}
)
"""Every MIME type (without parameters) accepted for upload, with its category."""

# The types Graph's Resumable Upload API takes as a session's `file_type`.
RESUMABLE_TYPES = frozenset(
    {"application/pdf", "image/jpeg", "image/jpg", "image/png", "video/mp4"}
)

# Names from the archive's fixed extension table, plus the spellings it does not produce.
_BY_EXTENSION: MappingProxyType[str, str] = MappingProxyType(
    {ext: mime for mime, ext in EXTENSIONS.items() if mime in UPLOAD_TYPES}
    | {".jpeg": "image/jpeg", ".opus": OGG_OPUS}
)


def _codecs(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "codecs":
            return value.strip().strip('"').lower()
    return None


def _animated_webp(head: bytes) -> bool:
    # An extended WebP (VP8X chunk) sets bit 1 of its flags byte for an animation.
    return (
        head[:4] == b"RIFF"
        and head[8:16] == b"WEBPVP8X"
        and len(head) > 20
        and bool(head[20] & 0x02)
    )


def upload_problem(mime_type: str, size: int, head: bytes) -> str | None:
    """Why an upload of this type and size would be refused, or None when it is accepted.

    `mime_type` may carry parameters (`audio/ogg; codecs=opus`); `head` is the file's start
    (21 bytes or more when there are), which tells an animated sticker from a static one.
    """
    base = base_mime_type(mime_type)
    category = UPLOAD_TYPES.get(base)
    if category is None:
        return f"media type {base or '(none)'} is not supported for upload"
    codec = _codecs(mime_type)
    # Meta takes Ogg with Opus only, and refuses a bare audio/ogg that does not say which.
    if base == "audio/ogg" and codec is None:
        return f"audio/ogg is supported with the Opus codec only: give the type as {OGG_OPUS}"
    if base == "audio/ogg" and codec != "opus":
        return f"audio/ogg is supported with the Opus codec only, not {codec}"
    limit, label = LIMITS[category], base
    if category == "sticker" and not _animated_webp(head):
        limit, label = STATIC_STICKER_LIMIT, f"{base} (static sticker)"
    if size > limit:
        return f"file of {size} bytes is over the {limit}-byte limit for {label}"
    return None


def resumable_problem(mime_type: str, size: int, head: bytes) -> str | None:
    """Like `upload_problem`, for a Graph resumable upload session (fewer types)."""
    base = base_mime_type(mime_type)
    if base not in RESUMABLE_TYPES:
        accepted = ", ".join(sorted(RESUMABLE_TYPES))
        return f"media type {base or '(none)'} is not supported for resumable upload ({accepted})"
    return upload_problem("image/jpeg" if base == "image/jpg" else mime_type, size, head)


def guess_mime_type(path: str | PurePath) -> str | None:
    """The upload MIME type of a file name's extension, from a fixed table; None if unknown."""
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())
