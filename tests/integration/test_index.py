"""The index in the bucket and the read API's rate against real servers, without the processes:
entries written and found in SeaweedFS, never listed as sidecars, rebuilt by reindex with its
counts; the rate per key counted in a Redis of the module's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import free_port
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import StorageError
from wa_media.core.index import IndexEntry, entry_keys, media_id_entry_key, wamid_entry_key
from wa_media.core.keys import lookup_rate_key
from wa_media.core.lookup import ApiKey, RateVerdict
from wa_media.stores.audit import sidecar_keys
from wa_media.stores.index import find, index_media, reindex
from wa_media.stores.lookup_rate import LookupRate
from wa_media.stores.redis_client import connect
from wa_media.stores.s3 import ArchiveStore, make_s3_client

BUCKET = "wa-archive"
AT = datetime(2026, 12, 4, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    store = SeaweedFS(tmp_path_factory.mktemp("weed"), buckets=(BUCKET,)).start()
    yield store
    store.stop()


@pytest.fixture
def s3(seaweed: SeaweedFS) -> Any:
    return seaweed.client()


def _media(
    store: ArchiveStore, number: str, media_id: str, wamid: str, *, sidecar: bool = True
) -> IndexEntry:
    """A media as the worker leaves it: object, entries, then its sidecar."""
    prefix = store.target.prefix
    key = f"{prefix}/{number}/2026/12/04/{media_id}.jpg".lstrip("/")
    body = f"bytes of {media_id}".encode()
    store.client.put_object(Bucket=BUCKET, Key=key, Body=body)
    entry = IndexEntry.of(
        phone_number_id=number,
        media_id=media_id,
        wamid=wamid,
        bucket=BUCKET,
        key=key,
        sidecar_key=key + ".json",
        at=AT,
    )
    index_media(store, entry)
    if sidecar:
        document = {"schema": 2, "phone_number_id": number, "media_id": media_id, "wamid": wamid}
        store.put_json(key + ".json", {**document, "key": key})
    return entry


def _delete_index(s3: Any, prefix: str) -> None:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/_index/").get("Contents", [])
    for item in listed:
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def test_an_entry_is_found_by_wamid_and_media_id_and_scoped_by_account(s3: Any) -> None:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET, "find"))
    entry = _media(store, "100", "5551", "wamid.HBgL+/=one")
    locations = [("wa-archive", "elsewhere"), ("wa-archive", "find")]
    for ref in ("wamid.HBgL+/=one", "5551"):
        found = find(s3, locations, ref)
        assert found is not None
        assert found.entry == entry
        assert found.sidecar is not None
        assert found.sidecar["media_id"] == "5551"
        assert find(s3, locations, ref, numbers=["100", "200"]) is not None
        # Another account's key finds nothing, as for a media that does not exist.
        assert find(s3, locations, ref, numbers=["200"]) is None
    assert find(s3, locations, "wamid.never") is None
    assert find(s3, locations, "../../etc") is None


def test_an_entry_whose_sidecar_is_missing_is_found_without_it(s3: Any) -> None:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET, "half"))
    _media(store, "100", "5552", "wamid.half", sidecar=False)
    found = find(s3, [(BUCKET, "half")], "5552")
    assert found is not None
    assert found.sidecar is None


def test_entries_are_written_once_and_never_listed_as_sidecars(s3: Any) -> None:
    store = ArchiveStore(s3, ArchiveTarget(BUCKET, "listing"))
    entry = _media(store, "100", "odd.json", "wamid.odd")
    by_media_id = media_id_entry_key("listing", "odd.json")
    assert by_media_id is not None
    assert by_media_id.endswith(".json")
    listed = list(sidecar_keys(s3, BUCKET, "listing"))
    assert listed == [entry.key + ".json"]
    # A second write of an entry leaves the first.
    other = IndexEntry.of(**{**_fields(entry), "key": "listing/other.jpg"}, at=AT)
    index_media(store, other)
    body = s3.get_object(Bucket=BUCKET, Key=wamid_entry_key("listing", "wamid.odd"))["Body"]
    assert IndexEntry.parse(json.loads(body.read())) == entry


def _fields(entry: IndexEntry) -> dict[str, str]:
    names = ("phone_number_id", "media_id", "wamid", "bucket", "key", "sidecar_key")
    return {name: getattr(entry, name) for name in names}


def test_reindex_writes_the_missing_entries_and_counts_what_it_found(s3: Any) -> None:
    prefix = "reindex"
    store = ArchiveStore(s3, ArchiveTarget(BUCKET, prefix))
    first = _media(store, "100", "6001", "wamid.first")
    second = _media(store, "100", "6002", "wamid.second")
    # Another account of the same bucket and prefix archived the same media id.
    _media(store, "200", "6002", "wamid.other")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/100/2026/12/04/broken.jpg.json", Body=b"{not")
    _delete_index(s3, prefix)
    # What the other account's entry would have been written first.
    taken = IndexEntry.of(**{**_fields(second), "phone_number_id": "200", "key": "x"}, at=AT)
    store.put_json(f"{prefix}/_index/by-media-id/6002", taken.document())

    counts = reindex(s3, store)

    assert (counts.sidecars, counts.unreadable) == (4, 1)
    # first: 2 written; second: wamid written, media id taken; other: wamid written, media id
    # present-or-taken (it holds another key).
    assert counts.written == 4
    assert counts.taken == 2
    for entry in (first, second):
        found = find(s3, [(BUCKET, prefix)], entry.wamid)
        assert found is not None
        assert found.entry.key == entry.key
    again = reindex(s3, store)
    assert (again.written, again.present, again.taken) == (0, 4, 2)
    assert set(entry_keys(prefix, first)) <= {
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    }


def test_s3_unreachable_is_a_storage_error() -> None:
    client = make_s3_client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError, match="S3 read failed"):
        find(client, [(BUCKET, "")], "wamid.x")


def test_a_key_s_rate_is_counted_in_redis_by_its_fingerprint(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    try:
        redis = connect(server.url)
        now = [1_800_000_000.25]
        rate = LookupRate(redis, per_second=3, clock=lambda: now[0])
        key, other = ApiKey("crm", "crm-key-0123456789ab"), ApiKey("bi", "bi-key-0123456789abc")
        assert [rate.admit(key) for _ in range(4)] == [RateVerdict(True)] * 3 + [
            RateVerdict(False, 1)
        ]
        assert rate.admit(other) == RateVerdict(True)
        counter = lookup_rate_key(key.fingerprint, 1_800_000_000)
        assert redis.get(counter) == b"4"
        assert 0 < redis.ttl(counter) <= 2
        assert not [k for k in redis.keys("*") if b"crm-key" in k]
        now[0] += 1  # the next second's window
        assert rate.admit(key) == RateVerdict(True)
    finally:
        server.stop()
