"""The archive's index in the bucket (docs/s3-archive.md, "The index"): where a media is found
by its wamid or its media id without listing the bucket. Pure: keys and documents.

`{prefix}/_index/by-wamid/{sha256(wamid) hex}` and `{prefix}/_index/by-media-id/{media_id}`
each hold a small JSON document naming the object and its sidecar. Their keys never end in
`.json`, so the code that lists sidecars never takes one for a sidecar. They are written before
the sidecar, which stays the last write of an archived media, and never overwritten: the first
entry of a wamid or media id stays (one of another account sharing the bucket and prefix
included: docs/s3-archive.md says so).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "INDEX_FOLDER",
    "INDEX_SCHEMA",
    "IndexEntry",
    "Kind",
    "entry_keys",
    "is_index_key",
    "lookup_keys",
    "media_id_entry_key",
    "wamid_entry_key",
]

INDEX_SCHEMA = 1
INDEX_FOLDER = "_index"
Kind = Literal["message", "edit"]
# A media id as it may stand in a key (wa_media/core/layout.py's checked ids).
_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# How Cloud API wamids begin (media ids are digits): the entry tried first.
WAMID_START = "wamid."
_FIELDS = ("phone_number_id", "media_id", "wamid", "bucket", "key", "sidecar_key")


def _folder(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{INDEX_FOLDER}" if prefix else INDEX_FOLDER


def wamid_entry_key(prefix: str, wamid: str) -> str:
    """Where a message's entry lives: named by the SHA-256 of its wamid (wamids may hold `/`,
    `+` and `=`)."""
    return f"{_folder(prefix)}/by-wamid/{hashlib.sha256(wamid.encode()).hexdigest()}"


def media_id_entry_key(prefix: str, media_id: str) -> str | None:
    """Where a media id's entry lives; None for an id that cannot stand in a key (no media
    was archived under it)."""
    if not _ID.fullmatch(media_id) or set(media_id) == {"."}:
        return None
    return f"{_folder(prefix)}/by-media-id/{media_id}"


def lookup_keys(prefix: str, ref: str) -> list[str]:
    """The entries a wamid or a media id may be found at, the likelier first: a wamid's when
    `ref` reads as one (Cloud API wamids start `wamid.`), else the media id's; each read costs
    a request to S3."""
    keys = [wamid_entry_key(prefix, ref)]
    by_media_id = media_id_entry_key(prefix, ref)
    if by_media_id is not None:
        keys.insert(0 if not ref.startswith(WAMID_START) else 1, by_media_id)
    return keys


def is_index_key(key: str) -> bool:
    """Whether a key of the bucket is an index entry (of any prefix)."""
    return f"{INDEX_FOLDER}/by-wamid/" in key or f"{INDEX_FOLDER}/by-media-id/" in key


@dataclass(frozen=True)
class IndexEntry:
    """What an index entry says: whose media, where its object and sidecar are."""

    phone_number_id: str
    media_id: str
    wamid: str
    bucket: str
    key: str
    sidecar_key: str
    indexed_at: str
    kind: Kind = "message"
    """`edit`: the wamid of an edit that kept the media (its record beside the object)."""

    @classmethod
    def of(
        cls,
        *,
        phone_number_id: str,
        media_id: str,
        wamid: str,
        bucket: str,
        key: str,
        sidecar_key: str,
        at: datetime,
        kind: Kind = "message",
    ) -> IndexEntry:
        """An entry made `at` (kept as RFC 3339 UTC)."""
        indexed_at = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return cls(phone_number_id, media_id, wamid, bucket, key, sidecar_key, indexed_at, kind)

    def document(self) -> dict[str, Any]:
        """The entry's JSON document."""
        return {"schema": INDEX_SCHEMA, **asdict(self)}

    @classmethod
    def parse(cls, document: Any) -> IndexEntry | None:
        """The entry a document holds; None when it is not one this release reads."""
        if not isinstance(document, dict) or document.get("schema") != INDEX_SCHEMA:
            return None
        values = [document.get(name) for name in (*_FIELDS, "indexed_at")]
        strings = [value for value in values if isinstance(value, str) and value]
        kind = document.get("kind", "message")
        if len(strings) != len(values) or kind not in ("message", "edit"):
            return None
        number, media_id, wamid, bucket, key, sidecar_key, indexed_at = strings
        return cls(
            number,
            media_id,
            wamid,
            bucket,
            key,
            sidecar_key,
            indexed_at,
            "edit" if kind == "edit" else "message",
        )

    def same_media(self, other: IndexEntry) -> bool:
        """Whether two entries point at the same object of the same account."""
        return (self.phone_number_id, self.bucket, self.key) == (
            other.phone_number_id,
            other.bucket,
            other.key,
        )


def entry_keys(prefix: str, entry: IndexEntry) -> list[str]:
    """Where an entry is written: under its wamid and, for a message, under its media id (an
    edit's media id is the message's, already indexed)."""
    keys = [wamid_entry_key(prefix, entry.wamid)]
    by_media_id = media_id_entry_key(prefix, entry.media_id)
    if entry.kind == "message" and by_media_id is not None:
        keys.append(by_media_id)
    return keys
