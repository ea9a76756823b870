"""The media types the simulated APIs accept for upload, and their size limits (pure).

Written from Meta's Cloud API media guide ("Supported media types"), not taken from the
worker, so that the worker's own checks are tested against an independent table.
"""

from __future__ import annotations

from types import MappingProxyType

from werkzeug.http import parse_options_header

__all__ = [
    "MAX_UPLOAD_SIZE",
    "REQUIRED_CODECS",
    "RESUMABLE_TYPES",
    "STATIC_STICKER_LIMIT",
    "SUPPORTED",
    "upload_problem",
]

KB = 1024
MB = 1024 * KB

# The largest media the Cloud API takes at all.
MAX_UPLOAD_SIZE = 100 * MB

SUPPORTED: MappingProxyType[str, int] = MappingProxyType(
    {
        # Audio
        "audio/aac": 16 * MB,
        "audio/amr": 16 * MB,
        "audio/mpeg": 16 * MB,
        "audio/mp4": 16 * MB,
        "audio/ogg": 16 * MB,
        # Document
        "text/plain": 100 * MB,
        "application/vnd.ms-excel": 100 * MB,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * MB,
        "application/msword": 100 * MB,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * MB,
        "application/vnd.ms-powerpoint": 100 * MB,
        "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * MB,
        "application/pdf": 100 * MB,
        # Image
        "image/jpeg": 5 * MB,
        "image/png": 5 * MB,
        # Sticker: an animated one; a static one has STATIC_STICKER_LIMIT
        "image/webp": 500 * KB,
        # Video
        "video/3gpp": 16 * MB,
        "video/mp4": 16 * MB,
    }
)
"""Each MIME type (without parameters) accepted for upload, with its largest size in bytes."""

STATIC_STICKER_LIMIT = 100 * KB

REQUIRED_CODECS: MappingProxyType[str, str] = MappingProxyType({"audio/ogg": "opus"})
"""Types accepted with one codec only, which their `codecs` parameter must name: Ogg audio is
Opus only, and a bare `audio/ogg` is refused."""

# The `file_type` values of Graph's Resumable Upload API ("Upload a file" guide).
RESUMABLE_TYPES = frozenset(
    {"application/pdf", "image/jpeg", "image/jpg", "image/png", "video/mp4"}
)


def _animated_webp(head: bytes) -> bool:
    # RIFF size WEBP, then an extended-format VP8X chunk whose flags byte has the animation bit.
    if len(head) < 21 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    return head[12:16] == b"VP8X" and (head[20] & 0b10) != 0


def upload_problem(content_type: str, size: int, head: bytes) -> str | None:
    """Why the Cloud API would refuse this upload (the details of its 131053), or None.

    `head` is the file's start, which tells an animated sticker from a static one.
    """
    mime, options = parse_options_header(content_type)
    mime = mime.lower()
    limit = SUPPORTED.get(mime)
    if limit is None:
        return f"Unsupported media type: {mime or '(none)'}"
    codec = REQUIRED_CODECS.get(mime)
    if codec is not None and options.get("codecs", "").lower() != codec:
        return f"{mime} is supported with the {codec} codec only ({mime}; codecs={codec})"
    if mime == "image/webp" and not _animated_webp(head):
        limit = STATIC_STICKER_LIMIT
    if size > limit:
        return f"Media file size too big: {size} bytes, the limit for {mime} is {limit}"
    return None
