"""What an account archives: which media types, which MIME types, up to which size per type,
and whether the service sends its own 131052 warning. Pure: the values, their grammar and the
decision; the settings that give them are wa_media/config's (ARCHIVE_MEDIA_TYPES,
ARCHIVE_MIME_TYPES, ARCHIVE_MAX_BYTES, TOO_LARGE_REPLY, an account's `policy`).

A media the policy leaves out is skipped, never silently: `web` skips it by type and MIME type
while parsing (`policy_type`, `policy_mime`), the worker by size as soon as the size is known
(`policy_size`), and by MIME type when only the look-up named one. The default policy archives
everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from wa_media.core.jobs import MediaType

__all__ = [
    "ALL_MEDIA_TYPES",
    "ANY_MIME_TYPE",
    "DEFAULT_POLICY",
    "POLICY_SKIP_REASONS",
    "ArchivePolicy",
    "PolicySkipReason",
    "PolicyVerdict",
    "bare_mime_type",
    "byte_size",
    "limits_of",
    "max_bytes_text",
    "media_types",
    "mime_pattern",
    "mime_patterns",
    "parse_max_bytes",
]

PolicySkipReason = Literal["policy_type", "policy_mime", "policy_size"]
"""Why the policy left a media out: its type, its MIME type, its size."""
POLICY_SKIP_REASONS: tuple[PolicySkipReason, ...] = get_args(PolicySkipReason)
ALL_MEDIA_TYPES: tuple[MediaType, ...] = get_args(MediaType)
ANY_MIME_TYPE = "*/*"

# RFC 6838's restricted names, lower-cased; a subtype may be `*` in a pattern.
_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_PATTERN = re.compile(rf"(?:{_NAME}/(?:{_NAME}|\*)|\*/\*)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
# Decimal units as Meta's media guide writes sizes ("16 MB"), binary ones spelled as such.
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def media_types(names: Iterable[str]) -> frozenset[MediaType]:
    """The media types named (image, video, audio, document, sticker; blanks ignored);
    ValueError for another name, or none."""
    found: set[MediaType] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in ALL_MEDIA_TYPES:
            raise ValueError(f"{raw.strip()!r} is not a media type ({', '.join(ALL_MEDIA_TYPES)})")
        found.add(name)  # narrowed by the check against ALL_MEDIA_TYPES just above
    if not found:
        raise ValueError(f"name at least one media type ({', '.join(ALL_MEDIA_TYPES)})")
    return frozenset(found)


def mime_pattern(raw: str) -> str:
    """A MIME pattern, lower-cased: `type/subtype`, `type/*` or `*/*`; ValueError otherwise."""
    pattern = raw.strip().lower()
    if pattern == "*":
        return ANY_MIME_TYPE
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(f"{raw.strip()[:40]!r} is not a MIME pattern (type/subtype, type/*, */*)")
    return pattern


def mime_patterns(raws: Iterable[str]) -> tuple[str, ...]:
    """MIME patterns, in order, without repeats; ValueError for a bad one or none."""
    patterns = tuple(dict.fromkeys(mime_pattern(raw) for raw in raws if raw.strip()))
    if not patterns:
        raise ValueError("name at least one MIME pattern (*/* for any)")
    return patterns


def byte_size(raw: str | int) -> int:
    """A size in bytes: a whole number, or a number with a unit (B, KB, MB, GB: powers of
    1000; KiB, MiB, GiB: powers of 1024), e.g. `50MB`, `1.5 GiB`; more than 0."""
    if isinstance(raw, bool):
        raise ValueError("a size is a number of bytes")
    if isinstance(raw, int):
        size = raw
    else:
        match = _SIZE.fullmatch(raw.strip().lower())
        if match is None or match.group(2) not in _UNITS:
            raise ValueError(
                f"{raw.strip()[:40]!r} is not a size (bytes, or a number with B, KB, MB, GB, "
                "KiB, MiB or GiB)"
            )
        size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ValueError("a size is more than 0 bytes")
    return size


def _limits(pairs: Mapping[str, str | int]) -> tuple[tuple[MediaType, int], ...]:
    limits: dict[MediaType, int] = {}
    for name, size in pairs.items():
        (kind,) = media_types([name])
        limits[kind] = byte_size(size)
    return tuple(sorted(limits.items()))


def parse_max_bytes(text: str) -> tuple[tuple[MediaType, int], ...]:
    """`video=50MB,document=20000000`: a size per media type, each type once; ValueError."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, equals, size = item.partition("=")
        if not equals:
            raise ValueError(f"expected type=size, got {item.strip()[:40]!r}")
        if name.strip().lower() in pairs:
            raise ValueError(f"{name.strip()!r} is given twice")
        pairs[name.strip().lower()] = size
    if not pairs:
        raise ValueError("expected type=size pairs, e.g. video=50MB,document=20MB")
    return _limits(pairs)


def max_bytes_text(limits: Iterable[tuple[MediaType, int]]) -> str:
    """The limits as ARCHIVE_MAX_BYTES spells them, in bytes."""
    return ",".join(f"{kind}={size}" for kind, size in limits)


def bare_mime_type(mime_type: str) -> str:
    """`type/subtype`, lower-cased, without parameters (`audio/ogg; codecs=opus`)."""
    return mime_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class PolicyVerdict:
    """Why a media is not archived: the reason (a bounded label) and a line for an operator."""

    reason: PolicySkipReason
    detail: str


@dataclass(frozen=True)
class ArchivePolicy:
    """One account's archive policy; the default archives every media and sends the warning."""

    media_types: frozenset[MediaType] = frozenset(ALL_MEDIA_TYPES)
    mime_types: tuple[str, ...] = (ANY_MIME_TYPE,)
    """MIME patterns: `type/subtype`, `type/*`, `*/*`."""
    max_bytes: tuple[tuple[MediaType, int], ...] = ()
    """A size limit per media type; a type not named has none but MAX_MEDIA_BYTES."""
    too_large_reply: bool = True
    """Whether the service sends its own warning on a 131052; else an event tells consumers."""

    def limit(self, media_type: str) -> int | None:
        """The largest size this account archives for a media type; None: no limit of its own."""
        for kind, size in self.max_bytes:
            if kind == media_type:
                return size
        return None

    def mime_allowed(self, mime_type: str) -> bool:
        """Whether a MIME type matches one of the patterns."""
        bare = bare_mime_type(mime_type)
        kind = bare.partition("/")[0]
        return any(
            pattern in (ANY_MIME_TYPE, bare) or pattern == f"{kind}/*"
            for pattern in self.mime_types
        )

    def by_type(self, media_type: str, mime_type: str | None) -> PolicyVerdict | None:
        """None when a media of this type and MIME type (None: not known yet) is archived."""
        if media_type not in self.media_types:
            return PolicyVerdict("policy_type", f"the account does not archive {media_type} media")
        if mime_type is not None and not self.mime_allowed(mime_type):
            shown = bare_mime_type(mime_type)[:80]
            return PolicyVerdict("policy_mime", f"the account does not archive {shown}")
        return None

    def by_size(self, media_type: str, size: int | None) -> PolicyVerdict | None:
        """None unless the media is known to be larger than the account's limit for its type."""
        limit = self.limit(media_type)
        if limit is None or size is None or size <= limit:
            return None
        return PolicyVerdict(
            "policy_size", f"{media_type} of {size} bytes, over the account's {limit} bytes"
        )

    def overridden(
        self,
        *,
        media_types: frozenset[MediaType] | None = None,
        mime_types: tuple[str, ...] | None = None,
        max_bytes: tuple[tuple[MediaType, int], ...] | None = None,
        too_large_reply: bool | None = None,
    ) -> ArchivePolicy:
        """This policy with each value given (not None) replacing its own."""
        return ArchivePolicy(
            self.media_types if media_types is None else media_types,
            self.mime_types if mime_types is None else mime_types,
            self.max_bytes if max_bytes is None else max_bytes,
            self.too_large_reply if too_large_reply is None else too_large_reply,
        )


DEFAULT_POLICY = ArchivePolicy()


def limits_of(pairs: Mapping[str, str | int]) -> tuple[tuple[MediaType, int], ...]:
    """A mapping of media type to size (an accounts file's `max_bytes`) as limits; ValueError."""
    return _limits(pairs)
