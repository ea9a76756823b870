"""The media types the Cloud API accepts for upload and their size limits (pure).

From the media guide (DOMAIN.md section 2): audio 16 MB, documents 100 MB, images 5 MB,
stickers 100 KB static and 500 KB animated, video 16 MB.
"""

from __future__ import annotations

from werkzeug.http import parse_options_header

__all__ = ["MAX_UPLOAD_SIZE", "RESUMABLE_TYPES", "SUPPORTED", "upload_problem"]

KB = 1024
MB = 1024 * KB
MAX_UPLOAD_SIZE = 100 * MB

_AUDIO, _DOCUMENT, _IMAGE, _VIDEO = 16 * MB, 100 * MB, 5 * MB, 16 * MB
_STICKER_STATIC, _STICKER_ANIMATED = 100 * KB, 500 * KB

SUPPORTED: dict[str, int] = {
    "audio/aac": _AUDIO,
    "audio/amr": _AUDIO,
    "audio/mpeg": _AUDIO,
    "audio/mp4": _AUDIO,
    "audio/ogg": _AUDIO,
    "text/plain": _DOCUMENT,
    "application/vnd.ms-excel": _DOCUMENT,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _DOCUMENT,
    "application/msword": _DOCUMENT,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _DOCUMENT,
    "application/vnd.ms-powerpoint": _DOCUMENT,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _DOCUMENT,
    "application/pdf": _DOCUMENT,
    "image/jpeg": _IMAGE,
    "image/png": _IMAGE,
    "image/webp": _STICKER_ANIMATED,
    "video/3gpp": _VIDEO,
    "video/mp4": _VIDEO,
}


def _animated_webp(head: bytes) -> bool:
    # An extended WebP (VP8X chunk) sets bit 1 of its flags byte for an animation.
    return (
        head[:4] == b"RIFF"
        and head[8:16] == b"WEBPVP8X"
        and len(head) > 20
        and bool(head[20] & 0x02)
    )


def upload_problem(content_type: str, size: int, head: bytes) -> str | None:
    """Return why an upload of this type and size is refused, or None.

    `head` is the start of the file (at least 21 bytes when there are), to tell an animated
    sticker from a static one.
    """
    mime_type, options = parse_options_header(content_type)
    mime_type = mime_type.lower()
    limit = SUPPORTED.get(mime_type)
    if limit is None:
        return f"Unsupported media type {mime_type or '(none)'}"
    # Only Opus in Ogg; `audio/ogg` alone is what clients commonly send for it.
    if mime_type == "audio/ogg" and options.get("codecs", "opus").lower() != "opus":
        return "Only the Opus codec is supported in audio/ogg"
    if mime_type == "image/webp" and not _animated_webp(head):
        limit = _STICKER_STATIC
    if size > limit:
        return f"Media file size too big: {size} bytes, max {limit} for {mime_type}"
    return None


# The types Graph's Resumable Upload API takes (`file_type` of a session).
RESUMABLE_TYPES = frozenset(
    {"application/pdf", "image/jpeg", "image/jpg", "image/png", "video/mp4"}
)
