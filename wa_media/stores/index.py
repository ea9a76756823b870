"""The index in the bucket (wa_media/core/index.py): written beside each archived media, read
by `wa-media find` and `web`'s read API, rebuilt by `wa-media reindex` for media archived before
it existed. S3 through the adapter (wa_media/stores/s3.py)."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wa_media.core.index import IndexEntry, entry_keys, lookup_keys
from wa_media.core.ports import ArchiveBucket
from wa_media.stores.audit import SIDECAR_SUFFIX, sidecar_keys
from wa_media.stores.s3 import ArchiveStore, read_if_present

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "Found",
    "FoundCache",
    "Reindexed",
    "find",
    "index_media",
    "read_entry",
    "reindex",
    "sidecar_entry",
]


def index_media(store: ArchiveBucket, entry: IndexEntry) -> None:
    """Write the entries of an archived media (or of an edit's wamid), each only where its key
    is free: before the sidecar, so that a retry after a crash writes them again."""
    for key in entry_keys(store.target.prefix, entry):
        store.put_json(key, entry.document())


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def read_entry(client: S3Client, bucket: str, key: str) -> IndexEntry | None:
    """The entry at `key`; None when there is none, or what is there is not one."""
    return IndexEntry.parse(_json(read_if_present(client, bucket, key)))


@dataclass(frozen=True)
class Found:
    """A media found through the index: its entry and its sidecar (None when the sidecar is
    gone: the object was deleted after it was indexed)."""

    entry: IndexEntry
    sidecar: dict[str, Any] | None


_Where = tuple[str, str, str]
"""A reference looked up in a bucket and prefix."""


@dataclass
class FoundCache:
    """Media found through the index, kept in memory (least recently used out past `size`).

    An index entry and a sidecar never change once written (conditional writes), so a media
    found stays found; only its removal from the bucket (by hand, a lifecycle rule) is seen
    late, up to `ttl` seconds. What is not found is never kept: it may be archived any moment.
    """

    size: int = 4096
    ttl: float = 300.0
    clock: Callable[[], float] = field(default=time.monotonic)
    _items: OrderedDict[_Where, tuple[float, Found]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, where: _Where) -> Found | None:
        """The media found at `where` less than `ttl` seconds ago, or None."""
        with self._lock:
            kept = self._items.get(where)
            if kept is None:
                return None
            if self.clock() - kept[0] >= self.ttl:
                del self._items[where]
                return None
            self._items.move_to_end(where)
            return kept[1]

    def put(self, where: _Where, found: Found) -> None:
        """Keep a media found with its sidecar."""
        with self._lock:
            self._items[where] = (self.clock(), found)
            self._items.move_to_end(where)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _found_at(client: S3Client, bucket: str, prefix: str, ref: str) -> Found | None:
    for key in lookup_keys(prefix, ref):
        entry = read_entry(client, bucket, key)
        if entry is None or entry.bucket != bucket:
            continue
        sidecar = _json(read_if_present(client, bucket, entry.sidecar_key))
        return Found(entry, sidecar if isinstance(sidecar, dict) else None)
    return None


def find(
    client: S3Client,
    locations: Iterable[tuple[str, str]],
    ref: str,
    numbers: Iterable[str] = (),
    cache: FoundCache | None = None,
) -> Found | None:
    """The media a wamid or media id names, looked up in each (bucket, prefix) in turn; with
    `numbers`, only a media of those accounts counts (another's is not found). With `cache`,
    a media found earlier is answered from memory. StorageError when S3 fails."""
    allowed = frozenset(numbers)
    for bucket, prefix in dict.fromkeys(locations):
        where = (bucket, prefix, ref)
        found = None if cache is None else cache.get(where)
        if found is None:
            found = _found_at(client, bucket, prefix, ref)
            if found is not None and found.sidecar is not None and cache is not None:
                cache.put(where, found)
        if found is None or (allowed and found.entry.phone_number_id not in allowed):
            continue
        return found
    return None


def sidecar_entry(document: Any, bucket: str, sidecar_key: str, at: datetime) -> IndexEntry | None:
    """The entry a sidecar (schema 1 or 2) makes; None when it names no media."""
    if not isinstance(document, dict):
        return None
    values = [document.get(name) for name in ("phone_number_id", "media_id", "wamid")]
    strings = [value for value in values if isinstance(value, str) and value]
    if len(strings) != len(values):
        return None
    number, media_id, wamid = strings
    return IndexEntry.of(
        phone_number_id=number,
        media_id=media_id,
        wamid=wamid,
        bucket=bucket,
        key=sidecar_key.removesuffix(SIDECAR_SUFFIX),
        sidecar_key=sidecar_key,
        at=at,
    )


@dataclass
class Reindexed:
    """What a reindex found: sidecars read, entries written, entries already there (of the same
    media), entries another media holds, sidecars that name no media."""

    sidecars: int = 0
    written: int = 0
    present: int = 0
    taken: int = 0
    unreadable: int = 0


def reindex(client: S3Client, store: ArchiveStore, counts: Reindexed | None = None) -> Reindexed:
    """Write the missing entries of every sidecar under the store's prefix; idempotent."""
    counts = counts or Reindexed()
    bucket, prefix = store.bucket, store.target.prefix
    for key in sidecar_keys(client, bucket, prefix):
        counts.sidecars += 1
        entry = sidecar_entry(_json(read_if_present(client, bucket, key)), bucket, key, _now())
        if entry is None:
            counts.unreadable += 1
            continue
        for entry_key in entry_keys(prefix, entry):
            if store.put_json(entry_key, entry.document()):
                counts.written += 1
                continue
            there = read_entry(client, bucket, entry_key)
            if there is not None and there.same_media(entry):
                counts.present += 1
            else:
                counts.taken += 1
    return counts


def _now() -> datetime:
    return datetime.now(UTC)
