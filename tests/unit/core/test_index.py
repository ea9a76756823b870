"""The index's keys and documents (wa_media/core/index.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from wa_media.core.index import (
    INDEX_SCHEMA,
    IndexEntry,
    entry_keys,
    is_index_key,
    lookup_keys,
    media_id_entry_key,
    wamid_entry_key,
)

WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def entry(**changes: Any) -> IndexEntry:
    values: dict[str, Any] = {
        "phone_number_id": "106540352242922",
        "media_id": "1234567890",
        "wamid": WAMID,
        "bucket": "wa-archive",
        "key": "p/106540352242922/2026/12/04/1234567890.jpg",
        "sidecar_key": "p/106540352242922/2026/12/04/1234567890.jpg.json",
        "at": AT,
        **changes,
    }
    return IndexEntry.of(**values)


def test_entries_live_under_the_prefix_named_by_the_wamid_s_digest_and_the_media_id() -> None:
    digest = hashlib.sha256(WAMID.encode()).hexdigest()
    assert wamid_entry_key("p/q/", WAMID) == f"p/q/_index/by-wamid/{digest}"
    assert wamid_entry_key("", WAMID) == f"_index/by-wamid/{digest}"
    assert media_id_entry_key("p", "1234567890") == "p/_index/by-media-id/1234567890"
    # The likelier entry first: a media id's for what is not a wamid, else the wamid's.
    assert lookup_keys("p", "1234567890") == [
        "p/_index/by-media-id/1234567890",
        wamid_entry_key("p", "1234567890"),
    ]
    assert lookup_keys("p", "wamid.HBgL") == [
        wamid_entry_key("p", "wamid.HBgL"),
        "p/_index/by-media-id/wamid.HBgL",
    ]


@pytest.mark.parametrize("ref", [WAMID, "a/b", "..", "", "x" * 129, "wamid.with space"])
def test_a_reference_that_cannot_be_a_media_id_is_looked_up_by_wamid_only(ref: str) -> None:
    assert media_id_entry_key("p", ref) is None
    assert lookup_keys("p", ref) == [wamid_entry_key("p", ref)]


@pytest.mark.parametrize("media_id", ["1234567890", "abc.json", "x.JSON"])
def test_no_entry_is_taken_for_a_sidecar(media_id: str) -> None:
    """Sidecars are the keys ending in `.json`; an entry's key never does, or is known as an
    entry whatever its media id (wa_media/stores/audit.py skips it)."""
    keys = entry_keys("p", entry(media_id=media_id))
    assert len(keys) == 2
    for key in keys:
        assert is_index_key(key)
    assert not wamid_entry_key("p", WAMID).endswith(".json")
    assert not is_index_key("p/106540352242922/2026/12/04/1234567890.jpg.json")


def test_an_edit_is_indexed_by_its_wamid_only() -> None:
    edit = entry(wamid="wamid.edit", kind="edit")
    assert entry_keys("p", edit) == [wamid_entry_key("p", "wamid.edit")]


def test_the_document_holds_every_field_and_reads_back() -> None:
    document = entry().document()
    assert document == {
        "schema": INDEX_SCHEMA,
        "phone_number_id": "106540352242922",
        "media_id": "1234567890",
        "wamid": WAMID,
        "bucket": "wa-archive",
        "key": "p/106540352242922/2026/12/04/1234567890.jpg",
        "sidecar_key": "p/106540352242922/2026/12/04/1234567890.jpg.json",
        "indexed_at": "2026-12-04T12:00:00Z",
        "kind": "message",
    }
    assert IndexEntry.parse(document) == entry()
    assert IndexEntry.parse(entry(kind="edit").document()) == entry(kind="edit")


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        "text",
        {**entry().document(), "schema": 2},
        {**entry().document(), "key": ""},
        {**entry().document(), "bucket": 7},
        {**entry().document(), "kind": "other"},
        {name: value for name, value in entry().document().items() if name != "sidecar_key"},
    ],
)
def test_a_document_that_is_not_an_entry_reads_as_none(broken: Any) -> None:
    assert IndexEntry.parse(broken) is None


def test_same_media_compares_account_bucket_and_key() -> None:
    assert entry().same_media(entry(wamid="other", at=datetime.now(UTC)))
    assert not entry().same_media(entry(phone_number_id="2"))
    assert not entry().same_media(entry(key="elsewhere.jpg"))
