"""The record store's rules (wa_media/stores/records.py): admission and duplicates, the
states a media goes through, leases, the bookkeeping of tries, the reply ledger and rates.

Each rule runs against the Redis store on a real Redis and against the in-memory fake the
worker's unit tests use (tests/unit/fakes.py): the fake is held to the store's behaviour here.
The records read as typed values, and the hashes the previous release wrote read back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis import Redis
from structlog.testing import capture_logs

from devstack.processes import wait_for
from tests.conftest import redis_db
from tests.unit.fakes import PHONE, FakeLedger, FakeRates, FakeRecords
from wa_media.core.errors import BusyError
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.keys import FAILED_KEY, PENDING_KEY, REPLIES_PENDING_KEY, SWEEP_LAST_KEY
from wa_media.core.ports import MediaRecords, ReplyRates, ReplyRecords
from wa_media.core.records import LedgerEntry, MediaRecord, MediaRef, ReplyRef, admits
from wa_media.stores.deliveries import DeliveryState, RelayInbox
from wa_media.stores.records import MediaStateStore, ReplyLedger, ReplyLimits, SkippedLog
from worker import tasks

STALL_AFTER = 600.0


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    for url in redis_db(0):
        client = Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture
def clean(redis: Redis) -> Redis:
    redis.flushdb()
    return redis


def media_job(media_id: str = "m1", wamid: str = "wamid.1") -> MediaJob:
    return MediaJob(
        phone_number_id=PHONE,
        waba_id=None,
        wamid=wamid,
        sender="15550001",
        timestamp=int(time.time()),
        type="image",
        media_id=media_id,
        mime_type="image/jpeg",
        sha256=None,
    )


@dataclass
class Records:
    """A media store under test, with what the protocol does not tell: its raw hashes and
    its failed index."""

    store: MediaRecords
    redis: Redis | None

    def raw(self, ref: MediaRef) -> dict[str, str]:
        if self.redis is None:
            assert isinstance(self.store, FakeRecords)
            return dict(self.store.hashes.get(ref.member, {}))
        stored: dict[bytes, bytes] = self.redis.hgetall(ref.key)  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in stored.items()}

    def is_failed(self, ref: MediaRef) -> bool:
        if self.redis is None:
            assert isinstance(self.store, FakeRecords)
            return ref.member in self.store.failed
        return self.redis.zscore(FAILED_KEY, ref.member) is not None

    def pending_at(self, ref: MediaRef) -> float | None:
        if self.redis is None:
            assert isinstance(self.store, FakeRecords)
            return self.store.pending.get(ref.member)
        score = self.redis.zscore(PENDING_KEY, ref.member)
        return None if score is None else float(score)


@pytest.fixture(params=["fake", "redis"])
def records(request: pytest.FixtureRequest) -> Records:
    if request.param == "fake":
        return Records(FakeRecords(stall_after=STALL_AFTER, lease_ttl=2), None)
    redis = request.getfixturevalue("clean")
    return Records(MediaStateStore(redis, stall_after=STALL_AFTER, lease_ttl=2), redis)


# --- admission and duplicates --------------------------------------------------------------


def test_a_new_media_is_admitted_queued(records: Records) -> None:
    job = media_job()
    ref = MediaRef.of(job)
    before = time.time()

    assert records.store.admit_many([job]) == [True]

    raw = records.raw(ref)
    assert raw == {
        "state": "queued",
        "wamid": "wamid.1",
        "job": job.model_dump_json(exclude_defaults=True),
        "queued_at": raw["queued_at"],
        "updated_at": raw["queued_at"],
        "attempts": "0",
    }
    record = records.store.get(ref)
    assert record.state == "queued"
    assert record.attempts == 0
    assert record.media_job() == job
    assert record.queued_at is not None
    assert before - 0.01 <= record.queued_at <= time.time() + 0.01
    pending = records.pending_at(ref)
    assert pending is not None
    assert pending == pytest.approx(record.queued_at + STALL_AFTER, abs=0.01)
    assert records.store.due(time.time()) == []
    assert records.store.due(time.time() + STALL_AFTER + 1) == [ref.member]


def test_a_duplicate_in_flight_is_admitted_again_and_changes_nothing(records: Records) -> None:
    job = media_job()
    records.store.admit_many([job])
    first = records.raw(MediaRef.of(job))
    assert records.store.admit_many([job, media_job("m2")]) == [True, True]
    assert records.raw(MediaRef.of(job)) == first


@pytest.mark.parametrize(
    ("settle", "wamid", "admitted"),
    [
        ("failed", "wamid.1", False),
        ("failed", "wamid.edit", False),
        ("archived", "wamid.1", False),
        # Another message (an edit) brought an archived media: its task records it beside.
        ("archived", "wamid.edit", True),
    ],
)
def test_a_settled_media_is_a_duplicate_unless_another_message_brings_it(
    records: Records, settle: str, wamid: str, admitted: bool
) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])
    if settle == "failed":
        records.store.mark_failed(ref, "refused")
    else:
        records.store.mark_archived(ref, "key")
    assert records.store.admit_many([media_job(wamid=wamid)]) == [admitted]
    assert admits(records.store.get(ref), wamid) is admitted
    # The record stays as it was settled.
    assert records.store.get(ref).state == settle


# --- states and tries ----------------------------------------------------------------------


def test_a_try_counts_and_an_unfinished_one_is_a_crash(records: Records) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])

    first = records.store.start(ref)
    assert (first.attempts, first.crashes, first.integrity_failures) == (1, 0, 0)
    assert records.store.get(ref).state == "archiving"
    pending = records.pending_at(ref)
    assert pending is not None
    assert pending == pytest.approx(time.time() + records.store.lease_ttl, abs=0.5)

    second = records.store.start(ref)  # the first never recorded an outcome: its worker died
    assert (second.attempts, second.crashes) == (2, 1)


@pytest.mark.parametrize("integrity", [False, True])
def test_a_failed_try_schedules_the_next(records: Records, integrity: bool) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])
    records.store.start(ref)
    retry_at = time.time() + 42

    records.store.record_error(ref, "S3 down", retry_at=retry_at, integrity=integrity)

    raw = records.raw(ref)
    assert (raw["state"], raw["last_error"]) == ("queued", "S3 down")
    assert raw["next_try_at"] == f"{retry_at:.3f}"
    assert raw.get("integrity_failures") == ("1" if integrity else None)
    record = records.store.get(ref)
    assert record.integrity_failures == (1 if integrity else None)
    assert record.next_try_at == pytest.approx(retry_at, abs=0.001)
    assert records.pending_at(ref) == pytest.approx(retry_at + STALL_AFTER, abs=0.01)
    # The next try is not a crash.
    assert records.store.start(ref).crashes == 0


def test_an_archived_media_leaves_the_pending_index(records: Records) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])
    records.store.start(ref)
    records.store.record_error(ref, "S3 down", retry_at=time.time(), integrity=False)
    records.store.start(ref)

    records.store.mark_archived(ref, "pn/2026/m1.jpg")

    record = records.store.get(ref)
    assert (record.state, record.key, record.last_error) == ("archived", "pn/2026/m1.jpg", "")
    assert (record.attempts, record.settled) == (2, True)
    assert records.pending_at(ref) is None
    assert not records.is_failed(ref)


def test_a_failed_media_is_indexed_as_failed(records: Records) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])
    records.store.mark_failed(ref, "expired")
    record = records.store.get(ref)
    assert (record.state, record.last_error, record.settled) == ("failed", "expired", True)
    assert records.is_failed(ref)
    assert records.pending_at(ref) is None


def test_a_failure_keeps_its_label_and_code(records: Records) -> None:
    ref = MediaRef.of(media_job())
    records.store.admit_many([media_job()])
    records.store.mark_failed(ref, "unknown media", label="not_found", code=100)
    record = records.store.get(ref)
    assert (record.reason_label, record.error_code, record.skipped) == ("not_found", 100, None)


def test_a_media_skipped_by_the_policy_is_settled_but_not_failed(records: Records) -> None:
    job = media_job()
    ref = MediaRef.of(job)
    records.store.admit_many([job])
    listed = {"reason": "policy_size", "detail": "over", "wamid": job.wamid, "type": "image"}
    records.store.mark_skipped(ref, "over 5 bytes", label="policy_size", listed=listed)
    record = records.store.get(ref)
    assert (record.state, record.skipped, record.last_error) == (
        "failed",
        "policy_size",
        "skipped: over 5 bytes",
    )
    # Settled for every release (no sweep, no second admission), not among the failures.
    assert record.settled
    assert records.store.admit_many([job]) == [False]
    assert not records.is_failed(ref)
    assert records.pending_at(ref) is None
    if records.redis is None:
        assert isinstance(records.store, FakeRecords)
        assert records.store.skipped_log == [listed]
    else:
        [entry] = SkippedLog(records.redis).newest()
        assert {k: entry[k] for k in listed} == listed
        # `wa-media replay PHONE_NUMBER_ID:MEDIA_ID` after the limit was raised: tried afresh.
        store = records.store
        assert isinstance(store, MediaStateStore)
        assert store.requeue(ref) == job
        again = store.get(ref)
        assert (again.state, again.skipped, again.reason_label) == ("queued", None, None)
        assert store.failed() == []


def test_the_sweeps_reads(records: Records) -> None:
    job = media_job()
    ref = MediaRef.of(job)
    records.store.admit_many([job])
    assert records.store.resolve(ref.member) == ref
    assert records.store.resolve(f"{PHONE}:unknown") is None

    records.store.look_again(ref.member, 5.0)
    assert records.store.due(10.0) == [ref.member]
    records.store.look_again("not:pending", 5.0)  # only a member already pending moves
    assert records.store.due(10.0) == [ref.member]
    records.store.forget_pending(ref.member)
    assert records.store.due(time.time() + 10 * STALL_AFTER) == []


def test_an_empty_record_reads_as_none(records: Records) -> None:
    record = records.store.get(MediaRef(PHONE, "never"))
    assert record == MediaRecord()
    assert not record.exists


# --- leases --------------------------------------------------------------------------------


def test_a_lease_is_held_by_one_try_at_a_time(records: Records) -> None:
    ref = MediaRef.of(media_job())
    assert records.store.lease_remaining(ref) == 0
    with records.store.lease(ref):
        assert 0 < records.store.lease_remaining(ref) <= records.store.lease_ttl
        with pytest.raises(BusyError) as busy, records.store.lease(ref):
            pass
        assert busy.value.retry_after == records.store.lease_ttl / 4
    assert records.store.lease_remaining(ref) == 0
    with records.store.lease(ref):
        pass


def test_a_lease_is_not_renewed_past_its_try_deadline(clean: Redis) -> None:
    store = MediaStateStore(clean, lease_ttl=1)
    stuck = MediaRef("106540352242922", "stuck")
    with store.lease(stuck, renew_until=time.monotonic() + 0.5):
        # Still held, and no longer renewed: it runs out under the try that holds it, so
        # that the sweep hands the media to another worker.
        wait_for(lambda: store.lease_remaining(stuck) == 0, timeout=5, what="the lease to expire")


def test_a_lease_is_renewed_while_its_try_runs(clean: Redis) -> None:
    store = MediaStateStore(clean, lease_ttl=1)
    working = MediaRef("106540352242922", "working")
    with store.lease(working, renew_until=time.monotonic() + 60):
        started = time.monotonic()
        # Past two lease lengths, it was renewed all along.
        while time.monotonic() - started < 3:
            assert store.lease_remaining(working) > 0
            time.sleep(0.2)


# --- the wire format -----------------------------------------------------------------------

# A record as this release and the previous one write it, byte for byte (HGETALL's answer).
WRITTEN = {
    b"state": b"archived",
    b"wamid": b"wamid.HBgLMTU1NTAwMDEVAgASGBQzQUI",
    b"job": b'{"phone_number_id":"106540352242922","waba_id":null,"wamid":"wamid.HBgLMTU1NTAw'
    b'MDEVAgASGBQzQUI","sender":"15550001","timestamp":1764806400,"type":"image",'
    b'"media_id":"m1","mime_type":"image/jpeg","sha256":null}',
    b"queued_at": b"1764806401.250",
    b"updated_at": b"1764806409.125",
    b"attempts": b"2",
    b"crashes": b"1",
    b"integrity_failures": b"1",
    b"next_try_at": b"1764806405.500",
    b"last_error": b"",
    b"key": b"106540352242922/2025/12/04/m1.jpg",
}


def test_a_record_with_todays_fields_reads_as_typed_values() -> None:
    record = MediaRecord.from_hash(WRITTEN)
    assert record.state == "archived"
    assert record.wamid == "wamid.HBgLMTU1NTAwMDEVAgASGBQzQUI"
    assert (record.attempts, record.crashes, record.integrity_failures) == (2, 1, 1)
    assert (record.queued_at, record.updated_at) == (1764806401.25, 1764806409.125)
    assert record.next_try_at == 1764806405.5
    assert (record.key, record.last_error) == ("106540352242922/2025/12/04/m1.jpg", "")
    job = record.media_job()
    assert job is not None
    assert (job.media_id, job.timestamp) == ("m1", 1764806400)
    # Nothing is lost: the hash it was read from, field for field.
    assert record.to_hash() == {k.decode(): v.decode() for k, v in WRITTEN.items()}


def test_a_record_written_by_the_previous_release_reads_back_from_redis(clean: Redis) -> None:
    ref = MediaRef("106540352242922", "m1")
    clean.hset(ref.key, mapping=dict(WRITTEN))  # type: ignore[arg-type]
    record = MediaStateStore(clean).get(ref)
    assert record == MediaRecord.from_hash(WRITTEN)
    assert record.to_hash() == {k.decode(): v.decode() for k, v in WRITTEN.items()}
    # Reading changed nothing.
    assert clean.hgetall(ref.key) == WRITTEN


def test_a_field_a_later_release_adds_is_kept() -> None:
    record = MediaRecord.from_hash({"state": "queued", "priority": "9"})
    assert record.to_hash() == {"state": "queued", "priority": "9"}


@pytest.mark.parametrize("stored", [{"state": "lost"}, {"attempts": "many"}])
def test_a_value_no_release_writes_is_refused(stored: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"lost|many"):
        MediaRecord.from_hash(stored)


# --- the reply ledger and rates ------------------------------------------------------------

REPLY = ReplyJob(phone_number_id=PHONE, wamid="wamid.2", to="15550001", error_code=131052)


@pytest.fixture(params=["fake", "redis"])
def ledger(request: pytest.FixtureRequest) -> tuple[ReplyRecords, Any]:
    if request.param == "fake":
        fake = FakeLedger(stall_after=STALL_AFTER)
        return fake, fake.entries.__setitem__
    redis = request.getfixturevalue("clean")
    return ReplyLedger(redis, stall_after=STALL_AFTER), redis.set


def test_a_warning_is_claimed_once_until_settled_or_released(
    ledger: tuple[ReplyRecords, Any],
) -> None:
    store, _ = ledger
    ref = ReplyRef.of(REPLY)
    assert store.status(ref) is None
    assert store.claim(ref) == "claimed"
    assert store.status(ref) == LedgerEntry("sending")
    assert store.claim(ref) == "in_flight"
    store.release(ref)
    assert store.claim(ref) == "claimed"
    store.settle(ref, LedgerEntry.dropped("recipient_rate"))
    assert store.claim(ref) == "sent"
    assert store.status(ref) == LedgerEntry.dropped("recipient_rate")


def test_an_entry_of_the_previous_release_counts(ledger: tuple[ReplyRecords, Any]) -> None:
    store, write = ledger
    ref = ReplyRef.of(REPLY)
    write(ref.legacy_key, "sent")
    assert store.status(ref) == LedgerEntry.sent()
    assert store.claim(ref) == "sent"


def test_the_warnings_owed_are_indexed_until_settled(ledger: tuple[ReplyRecords, Any]) -> None:
    store, _ = ledger
    member = ReplyRef.of(REPLY).member
    store.admit_many([REPLY])
    assert store.due(time.time()) == []
    due = store.due(time.time() + STALL_AFTER + 1)
    assert due == [(member, REPLY.model_dump_json(exclude_defaults=True))]
    store.look_again(member, 5.0)
    assert [m for m, _ in store.due(10.0)] == [member]
    store.settled(member)
    assert store.due(time.time() + 10 * STALL_AFTER) == []


@pytest.fixture(params=["fake", "redis"])
def rates(request: pytest.FixtureRequest) -> ReplyRates:
    if request.param == "fake":
        return FakeRates(per_minute=2)
    return ReplyLimits(request.getfixturevalue("clean"), per_minute=2, interval=60)


def test_one_warning_per_customer_and_a_rate_per_account(rates: ReplyRates) -> None:
    first, second, third = (ReplyRef(PHONE, f"wamid.{n}") for n in (1, 2, 3))
    minute = int(time.time() // 60)
    assert rates.admit(first, "15550001") is None
    assert rates.admit(first, "15550001") is None  # its retry keeps the slot
    assert rates.admit(second, "15550001") == "recipient_rate"
    rates.forget(first, "15550001")
    assert rates.admit(second, "15550001") is None
    verdict = rates.admit(third, "15550002")
    if int(time.time() // 60) == minute:  # else the account's minute turned meanwhile
        assert verdict == "account_rate"


def test_a_sweep_passes_over_values_no_release_writes(
    clean: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record or a ledger entry nobody wrote (a hand edit, a future release) is logged and
    passed over: the sweep goes on with the others and completes."""
    store = MediaStateStore(clean, stall_after=STALL_AFTER)
    ledger = ReplyLedger(clean, stall_after=STALL_AFTER)
    job = media_job()
    assert store.admit(job)
    ref = MediaRef.of(job)
    clean.hset(ref.key, "state", "mislaid")
    clean.zadd(PENDING_KEY, {ref.member: 0})
    reply = ReplyJob(phone_number_id=PHONE, wamid="wamid.2", to="15550001", error_code=131052)
    ledger.admit_many([reply])
    clean.zadd(REPLIES_PENDING_KEY, {ReplyRef.of(reply).member: 0})
    clean.set(ReplyRef.of(reply).key, "mislaid")
    settings = type("Settings", (), {"sweep_stalled_after": STALL_AFTER})()
    services = type(
        "Services",
        (),
        {
            "state": store,
            "redis": clean,
            "replier": type("Replier", (), {"ledger": ledger})(),
            "archiver": type("Archiver", (), {"settings": settings})(),
            "deliveries": DeliveryState(clean, stall_after=STALL_AFTER),
            "inbox": RelayInbox(clean),
        },
    )()
    monkeypatch.setattr(tasks, "services", lambda: services)
    with capture_logs() as logs:
        counts = tasks.sweep.apply(task_id="t-sweep").get()
    assert counts["requeued"] == 0
    assert counts["replies_requeued"] == 0
    invalid = [entry for entry in logs if entry["event"] == "record_invalid"]
    assert [entry.get("kind") for entry in invalid] == [None, "reply"]
    # The media is looked at again later, not every sweep; the warning is settled.
    score = clean.zscore(PENDING_KEY, ref.member)
    assert score is not None
    assert score > time.time() + STALL_AFTER - 60
    assert clean.zscore(REPLIES_PENDING_KEY, ReplyRef.of(reply).member) is None
    assert clean.get(SWEEP_LAST_KEY) is not None
    assert store.failed() == []
