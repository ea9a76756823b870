"""The sweep's decisions (wa_media/core/sweep.py), for every state a media's record can be in
and every ledger entry a warning owed can have."""

from __future__ import annotations

import pytest

from tests.unit.fakes import PHONE
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.records import STATES, LedgerEntry, MediaRecord
from wa_media.core.sweep import MediaStep, ReplyStep, media_step, reply_step

NOW = 1_800_000_000.0
STALLED_AFTER = 600.0
JOB = MediaJob(
    phone_number_id=PHONE, waba_id=None, wamid="wamid.1", sender="15550001", timestamp=0,
    type="image", media_id="m1", mime_type="image/jpeg", sha256=None,
).model_dump_json(exclude_defaults=True)  # fmt: skip
REPLY = ReplyJob(phone_number_id=PHONE, wamid="wamid.2", to="15550001", error_code=131052)


def record(state: str | None, job: str | None = JOB) -> MediaRecord:
    fields = {"wamid": "wamid.1"}
    if state is not None:
        fields["state"] = state
    if job is not None:
        fields["job"] = job
    return MediaRecord.from_hash(fields)


def step(media: MediaRecord, lease: float = 0.0) -> MediaStep:
    asked: list[bool] = []

    def remaining() -> float:
        asked.append(True)
        return lease

    decided = media_step(media, now=NOW, lease_remaining=remaining, stalled_after=STALLED_AFTER)
    # The lease is read only of a media being archived: one more command, only when needed.
    assert bool(asked) == (media.state == "archiving" and media.job is not None)
    return decided


@pytest.mark.parametrize("state", [None, "archived", "failed"])
def test_a_settled_or_gone_media_leaves_the_index(state: str | None) -> None:
    assert step(record(state)) == MediaStep("settle")


@pytest.mark.parametrize("state", STATES)
def test_a_media_without_its_job_leaves_the_index(state: str) -> None:
    assert step(record(state, job=None)) == MediaStep("settle")


def test_a_media_queued_too_long_is_enqueued_again() -> None:
    assert step(record("queued")) == MediaStep("requeue", NOW + STALLED_AFTER, "queued too long")


def test_a_media_whose_lease_expired_is_enqueued_again() -> None:
    assert step(record("archiving")) == MediaStep("requeue", NOW + STALLED_AFTER, "lease expired")


def test_a_media_still_leased_is_looked_at_when_its_lease_runs_out() -> None:
    assert step(record("archiving"), lease=12.5) == MediaStep("leased", NOW + 12.5 + 1)


def test_every_state_has_a_step() -> None:
    for state in (*STATES, None):
        for lease in (0.0, 5.0):
            assert step(record(state), lease).action in ("settle", "leased", "requeue")


def reply(job: ReplyJob | None, entry: LedgerEntry | None, claim_ttl: float = 300.0) -> ReplyStep:
    return reply_step(job, entry, now=NOW, claim_ttl=claim_ttl, stall_after=STALLED_AFTER)


@pytest.mark.parametrize(
    "entry",
    [LedgerEntry.sent(), LedgerEntry.failed("refused"), LedgerEntry.dropped("account_rate")],
    ids=lambda entry: entry.text,
)
def test_a_settled_warning_leaves_the_index(entry: LedgerEntry) -> None:
    assert reply(REPLY, entry) == ReplyStep("settle")


@pytest.mark.parametrize("entry", [None, LedgerEntry("sending"), LedgerEntry.sent()])
def test_a_warning_whose_job_is_gone_leaves_the_index(entry: LedgerEntry | None) -> None:
    assert reply(None, entry) == ReplyStep("settle")


def test_a_warning_being_sent_is_looked_at_when_its_claim_runs_out() -> None:
    assert reply(REPLY, LedgerEntry("sending"), claim_ttl=300) == ReplyStep("wait", NOW + 300)


def test_a_warning_never_claimed_is_sent_again() -> None:
    assert reply(REPLY, None) == ReplyStep("resend", NOW + STALLED_AFTER)
