"""The pure parts of `wa-media status` and `verify`: rendering and comparing."""

from __future__ import annotations

import hashlib

import pytest

from wa_media.cli.status import render
from wa_media.stores.audit import compare
from wa_media.stores.snapshot import ArchivedCounts, PendingMedia, Snapshot, queue_keys

DIGEST = hashlib.sha256(b"x").hexdigest()
NOW = 1_800_000_000.0
NONE_ARCHIVED = ArchivedCounts(NOW, 0, 0)


def test_queue_keys_cover_every_priority_step() -> None:
    assert queue_keys("media") == ["media", "media\x06\x163", "media\x06\x166", "media\x06\x169"]


@pytest.mark.parametrize(
    ("digest", "size", "problem"),
    [
        (DIGEST, 1, None),
        (None, None, "object is missing"),
        (DIGEST, 2, "object has 2 bytes, sidecar says 1"),
        ("0" * 64, 1, "sha256 of the object differs from the sidecar's"),
    ],
)
def test_compare(digest: str | None, size: int | None, problem: str | None) -> None:
    assert compare({"sha256": DIGEST, "size": 1}, digest, size) == problem


def test_compare_refuses_a_sidecar_without_digest() -> None:
    assert (
        compare({"size": 1}, DIGEST, 1) == "sidecar is not a schema 1 or 2 document with a sha256"
    )
    assert compare([], DIGEST, 1) is not None


def test_render_names_the_oldest_and_its_deadline() -> None:
    sent = int(NOW) - 86_400 - 3_600  # 25 hours ago: 5 days 23 hours left
    snapshot = Snapshot(
        taken_at=NOW,
        pending=3,
        failed=1,
        by_state={"queued": 1, "archiving": 1},
        queues={"media": 4, "replies": 0},
        paused_credentials=0,
        nearest=[PendingMedia("m1", "queued", sent), PendingMedia("m2", "archiving", sent + 60)],
        sampled=2,
        sweep_last=NOW - 125,
    )
    text = render(snapshot, ArchivedCounts(NOW, 12, 340))
    assert "archived last hour        12" in text
    assert "archived last day        340" in text
    assert "last sweep          2m 5s ago" in text
    assert "media pending              3  (archiving 1, queued 1)" in text
    assert "oldest pending      m1" in text
    assert "deadline in 5d 23h" in text
    assert "(from the first 2 of 3 pending records)" in text


def test_render_overdue_and_empty() -> None:
    late = PendingMedia("m", "queued", int(NOW) - 8 * 86_400)
    snapshot = Snapshot(NOW, 1, 0, {"queued": 1}, {"media": 0, "replies": 0}, 1, [late], 1)
    assert "overdue 1d 0h" in render(snapshot, NONE_ARCHIVED)
    empty = Snapshot(NOW, 0, 0, {}, {"media": 0, "replies": 0}, 0)
    text = render(empty, NONE_ARCHIVED)
    assert "oldest pending             -" in text
    assert "archived last hour         0" in text
    assert "last sweep          none in the last day" in text


@pytest.mark.parametrize("schema", [1, 2])
def test_compare_reads_both_schemas_and_ignores_unknown_fields(schema: int) -> None:
    document = {"schema": schema, "sha256": DIGEST, "size": 1, "a_later_field": {"x": 1}}
    assert compare(document, DIGEST, 1) is None
