"""Each row of the conformance corpus parses to exactly the jobs, replies and skips it names."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from devstack import webhooks
from tests.conformance.corpus import (
    BSUID_PAGE,
    D360_BSUID_PAGE,
    D360_PAGE,
    ECHOES_PAGE,
    EDIT_PAGE,
    HISTORY_PAGE,
    MEDIA_KINDS,
    MEDIA_PAGES,
    OVERVIEW_PAGE,
    STATUS_PAGE,
    UNSUPPORTED_PAGE,
    VARIANTS,
    Maker,
    Variant,
    check_parsed,
)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_payload_parses_to_exactly_the_rows_jobs_replies_and_skips(variant: Variant) -> None:
    maker = Maker(int(time.time()))
    deliveries = variant.build(maker)

    assert deliveries
    for delivery in deliveries:
        # What the builders make is what Meta sends: JSON, signed as bytes.
        assert json.loads(webhooks.encode(delivery.payload)) == delivery.payload
    check_parsed(variant, maker, deliveries)


def test_every_row_names_its_page_and_what_it_exercises() -> None:
    pages = {BSUID_PAGE, D360_BSUID_PAGE, D360_PAGE, ECHOES_PAGE, EDIT_PAGE, HISTORY_PAGE}
    pages |= {OVERVIEW_PAGE, STATUS_PAGE, UNSUPPORTED_PAGE, *MEDIA_PAGES.values()}
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)
    for variant in VARIANTS:
        assert variant.page in pages, variant.id
        assert variant.exercises, variant.id


def test_the_corpus_covers_every_shape_the_issue_names() -> None:
    jobs = [(variant, job) for variant in VARIANTS for job in variant.jobs]
    for kind in MEDIA_KINDS:
        assert {job.url for _, job in jobs if job.kind == kind} == {False, True}, kind
    assert any(job.voice for _, job in jobs)
    assert any(job.animated for _, job in jobs)
    customers = {job.customer for _, job in jobs if job.customer}
    assert any(c.phone and c.user_id and c.parent_user_id and c.username for c in customers)
    assert any(c.user_id and c.username and not c.phone for c in customers)
    replies = {(r.to is not None, r.recipient is not None) for v in VARIANTS for r in v.replies}
    assert replies == {(True, False), (False, True)}
    assert {job.outcome for _, job in jobs if job.source == "edit"} == {"object", "edit_record"}
    assert {job.direction for _, job in jobs if job.source == "smb_message_echoes"} == {"outbound"}
    assert {job.direction for _, job in jobs if job.source == "history"} == {
        "inbound",
        "outbound",
    }
    reasons = Counter(reason for variant in VARIANTS for reason in variant.skipped)
    for reason in ("no_media_id", "unsupported", "status", "unknown_type", "other_field"):
        assert reasons[reason], reason
    assert any(variant.page == D360_PAGE and variant.jobs for variant in VARIANTS)
