"""`web`'s memory of media found through the index (wa_media/stores/index.py, FoundCache)."""

from __future__ import annotations

from datetime import UTC, datetime

from wa_media.core.index import IndexEntry
from wa_media.stores.index import Found, FoundCache


def found(media_id: str) -> Found:
    entry = IndexEntry.of(
        phone_number_id="1",
        media_id=media_id,
        wamid=f"wamid.{media_id}",
        bucket="b",
        key=f"p/1/{media_id}.jpg",
        sidecar_key=f"p/1/{media_id}.jpg.json",
        at=datetime(2026, 12, 4, tzinfo=UTC),
    )
    return Found(entry, {"sha256": media_id})


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_media_found_is_answered_from_memory_until_its_ttl() -> None:
    clock = Clock()
    cache = FoundCache(size=10, ttl=300, clock=clock)
    where = ("b", "p", "m1")
    assert cache.get(where) is None
    cache.put(where, found("m1"))
    assert cache.get(where) == found("m1")
    assert cache.get(("b", "other", "m1")) is None
    clock.now += 299.9
    assert cache.get(where) == found("m1")
    clock.now += 0.1
    assert cache.get(where) is None
    assert cache.get(where) is None


def test_the_least_recently_used_goes_first_past_its_size() -> None:
    cache = FoundCache(size=2, ttl=300, clock=Clock())
    for name in ("m1", "m2"):
        cache.put(("b", "p", name), found(name))
    assert cache.get(("b", "p", "m1")) is not None  # m2 is now the least recently used
    cache.put(("b", "p", "m3"), found("m3"))
    assert cache.get(("b", "p", "m2")) is None
    assert cache.get(("b", "p", "m1")) is not None
    assert cache.get(("b", "p", "m3")) is not None
