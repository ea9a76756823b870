"""`Archiver` against in-memory fakes of the records, the provider, the bucket and the commit
claims: every outcome, and what every error its collaborators can raise comes to."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.fakes import (
    PHONE,
    FakeBucket,
    FakeCommits,
    FakeDirectory,
    FakeEventSink,
    FakeMedia,
    FakeProvider,
    FakeRecords,
    StoredObject,
    account,
    every_error,
    settings,
)
from wa_media.core.errors import (
    ArchiveError,
    BusyError,
    CredentialsError,
    IntegrityError,
    PermanentError,
    PolicySkip,
    RedisUnavailable,
    RetryableError,
    StorageError,
)
from wa_media.core.index import IndexEntry, entry_keys, wamid_entry_key
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import edit_record_key, sidecar_key
from wa_media.core.policy import MAX_INTEGRITY_FAILURES, MAX_WORKER_DEATHS, MEDIA_LIFETIME
from wa_media.core.reasons import reason_of
from wa_media.core.records import MediaRef
from worker.archive import Archiver, Done, Failed, Result, RetryLater, Skipped
from worker.clients import AccountClients

BODY = b"\xff\xd8 the bytes of a photo \xff\xd9"
DIGEST = hashlib.sha256(BODY).hexdigest()
ERRORS = every_error()


def media_job(**changes: object) -> MediaJob:
    values: dict[str, object] = {
        "phone_number_id": PHONE,
        "waba_id": None,
        "wamid": "wamid.1",
        "sender": "15550001",
        "timestamp": int(time.time()) - 60,
        "type": "image",
        "media_id": "m1",
        "mime_type": "image/jpeg",
        "sha256": DIGEST,
        **changes,
    }
    return MediaJob.model_validate(values)


@dataclass
class World:
    records: FakeRecords = field(default_factory=FakeRecords)
    provider: FakeProvider = field(default_factory=FakeProvider)
    bucket: FakeBucket = field(default_factory=FakeBucket)
    commits: FakeCommits = field(default_factory=FakeCommits)
    events: FakeEventSink = field(default_factory=FakeEventSink)
    delete_after_archive: bool = False

    def __post_init__(self) -> None:
        self.provider.media["m1"] = FakeMedia(BODY)
        clients = AccountClients(
            account(delete_after_archive=self.delete_after_archive), self.provider, self.bucket
        )
        self.directory = FakeDirectory(clients)
        self.archiver = Archiver(
            settings(), self.directory, self.records, self.commits, self.events
        )

    def admit(self, job: MediaJob) -> MediaJob:
        assert self.records.admit_many([job]) == [True]
        return job

    def archive(self, job: MediaJob) -> Result:
        return self.archiver.archive(job)

    def key(self, job: MediaJob) -> str:
        return Archiver.object_key(job, "")

    def record(self, job: MediaJob) -> dict[str, str]:
        return self.records.hashes[MediaRef.of(job).member]


@pytest.fixture
def world() -> World:
    return World()


# --- done ----------------------------------------------------------------------------------


def test_a_media_is_archived_with_its_sidecar_and_recorded(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)

    assert world.archive(job) == Done("archived", key)

    assert world.bucket.objects[key].body == BODY
    assert world.bucket.objects[key].metadata["sha256"] == DIGEST
    sidecar = world.bucket.document(sidecar_key(key))
    assert (sidecar["sha256"], sidecar["size"]) == (DIGEST, len(BODY))
    record = world.record(job)
    assert (record["state"], record["key"], record["last_error"]) == ("archived", key, "")
    assert record["attempts"] == "1"
    assert MediaRef.of(job).member not in world.records.pending
    assert MediaRef.of(job).member in world.records.archived
    # The lease was let go, and the commit held its key's claim.
    assert world.records.leases == {}
    assert world.commits.held == [f"archive/{key}"]


def test_a_first_try_downloads_from_the_webhooks_url(world: World) -> None:
    job = world.admit(media_job(url="https://lookaside.fbsbx.com/m1"))
    assert isinstance(world.archive(job), Done)
    assert world.provider.fetched == [("m1", "https://lookaside.fbsbx.com/m1")]


def test_a_later_try_looks_the_media_up_and_aborts_stale_uploads(world: World) -> None:
    job = world.admit(media_job(url="https://lookaside.fbsbx.com/m1"))
    world.bucket.unfinished.append(world.key(job))
    world.records.hashes[MediaRef.of(job).member]["attempts"] = "1"

    assert isinstance(world.archive(job), Done)

    assert world.provider.fetched == [("m1", None)]
    assert world.bucket.unfinished == []


def test_an_archived_record_is_already_archived_without_a_download(world: World) -> None:
    job = world.admit(media_job())
    world.records.mark_archived(MediaRef.of(job), "where/it/went.jpg")

    assert world.archive(job) == Done("already_archived", "where/it/went.jpg")
    assert world.provider.fetched == []


def test_a_sidecar_in_the_bucket_means_archived_whatever_redis_remembers(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)
    world.bucket.put_json(sidecar_key(key), {"sha256": DIGEST})
    world.records.hashes[MediaRef.of(job).member]["attempts"] = "1"  # a later try

    assert world.archive(job) == Done("already_archived", key)
    assert world.provider.fetched == []
    assert world.record(job)["state"] == "archived"


def test_the_same_bytes_committed_by_another_writer_are_a_duplicate(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)
    world.bucket.objects[key] = StoredObject(BODY, {"sha256": DIGEST}, "image/jpeg")

    assert world.archive(job) == Done("already_archived", key)
    # Its sidecar is written all the same, and the record settled.
    assert world.bucket.document(sidecar_key(key))["sha256"] == DIGEST
    assert world.record(job)["state"] == "archived"


def test_an_edit_of_an_archived_media_is_recorded_beside_it(world: World) -> None:
    original = world.admit(media_job())
    key = world.key(original)
    assert world.archive(original) == Done("archived", key)
    edit = media_job(wamid="wamid.edit", source="edit", original_message_id="wamid.1")

    assert world.records.admit_many([edit]) == [True]
    assert world.archive(edit) == Done("edit_recorded", key)
    assert world.bucket.document(edit_record_key(key, "wamid.edit"))["kind"] == "edit"
    # Once only: the same edit again finds its record there.
    assert world.archive(edit) == Done("edit_recorded", key)


def test_a_deleting_account_deletes_the_providers_copy_once_archived() -> None:
    world = World(delete_after_archive=True)
    job = world.admit(media_job())
    assert isinstance(world.archive(job), Done)
    assert world.provider.deleted == ["m1"]


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
def test_a_failed_delete_is_only_logged(error: type[ArchiveError]) -> None:
    world = World(delete_after_archive=True)
    world.provider.fail["delete"] = error("refused")
    job = world.admit(media_job())
    assert world.archive(job) == Done("archived", world.key(job))


# --- retry later ---------------------------------------------------------------------------


def test_a_media_whose_lease_is_held_waits_for_it(world: World) -> None:
    job = world.admit(media_job())
    world.records.leases[MediaRef.of(job).member] = time.time() + 60

    result = world.archive(job)

    assert isinstance(result, RetryLater)
    assert isinstance(result.error, BusyError)
    assert result.countdown == world.records.lease_ttl / 4
    assert world.provider.fetched == []


def test_an_edit_waits_for_its_original_to_be_archived(world: World) -> None:
    world.admit(media_job())
    edit = media_job(wamid="wamid.edit", source="edit", original_message_id="wamid.1")

    result = world.archive(edit)

    assert isinstance(result, RetryLater)
    assert (result.countdown, type(result.error)) == (30, BusyError)


def test_an_unknown_number_waits_for_an_operator(world: World) -> None:
    job = world.admit(media_job(phone_number_id="999"))
    result = world.archive(job)
    assert isinstance(result, RetryLater)
    assert isinstance(result.error, CredentialsError)
    assert world.records.hashes["999:m1"]["state"] == "queued"


def test_bytes_that_do_not_verify_are_tried_again_then_given_up(world: World) -> None:
    world.provider.media["m1"] = FakeMedia(BODY, announced_sha256="0" * 64)
    job = world.admit(media_job(sha256=None))

    results = [world.archive(job) for _ in range(MAX_INTEGRITY_FAILURES)]

    assert all(isinstance(result, RetryLater) for result in results[:-1])
    assert world.record(job)["integrity_failures"] == str(MAX_INTEGRITY_FAILURES - 1)
    assert results[-1] == Failed(
        f"bytes did not verify {MAX_INTEGRITY_FAILURES} times: "
        "sha256 of the download differs from the look-up's",
        None,
        "sha256_mismatch",
    )
    assert world.record(job)["state"] == "failed"
    assert world.bucket.objects == {}


def test_a_size_other_than_announced_is_retried(world: World) -> None:
    world.provider.media["m1"] = FakeMedia(BODY, announced_size=len(BODY) + 1)
    job = world.admit(media_job())
    result = world.archive(job)
    assert isinstance(result, RetryLater)
    assert reason_of(result.error) == "size_mismatch"
    assert world.record(job)["integrity_failures"] == "1"


# --- failed --------------------------------------------------------------------------------


def test_an_expired_media_fails_without_a_download(world: World) -> None:
    job = world.admit(media_job(timestamp=int(time.time()) - MEDIA_LIFETIME - 1))
    result = world.archive(job)
    assert isinstance(result, Failed)
    assert result.label == "expired"
    assert world.provider.fetched == []
    assert world.record(job)["state"] == "failed"
    assert MediaRef.of(job).member in world.records.failed


def test_a_media_past_max_media_bytes_fails_as_too_big(world: World) -> None:
    world.provider.media["m1"] = FakeMedia(b"x" * 1001)
    job = world.admit(media_job(sha256=None))
    result = world.archive(job)
    assert isinstance(result, Failed)
    assert result.label == "too_big"
    assert world.bucket.objects == {}
    assert world.bucket.aborted == [world.key(job)]


def test_other_bytes_under_the_key_are_a_key_conflict(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)
    other = hashlib.sha256(b"other bytes").hexdigest()
    world.bucket.objects[key] = StoredObject(b"other bytes", {"sha256": other}, "image/jpeg")

    result = world.archive(job)

    assert isinstance(result, Failed)
    assert result.label == "key_conflict"
    assert world.bucket.objects[key].body == b"other bytes"  # left as they are
    assert world.record(job)["state"] == "failed"


def test_an_id_that_cannot_form_a_key_fails(world: World) -> None:
    job = world.admit(media_job(media_id="../m1"))
    result = world.archive(job)
    assert isinstance(result, Failed)
    assert result.label == "invalid_id"


def test_a_media_that_kills_its_workers_is_poison(world: World) -> None:
    job = world.admit(media_job())
    world.records.hashes[MediaRef.of(job).member].update(
        state="archiving", crashes=str(MAX_WORKER_DEATHS - 1)
    )
    result = world.archive(job)
    assert isinstance(result, Failed)
    assert result.label == "worker_died"
    assert world.provider.fetched == []


# --- every error of every collaborator ----------------------------------------------------

# Where each collaborator may fail during a try.
SITES = [
    ("provider", "check_paused"),
    ("provider", "fetch"),
    ("provider", "chunks"),
    ("bucket", "upload"),
    ("bucket", "write"),
    ("bucket", "commit"),
    ("bucket", "put_json"),
    ("commits", "hold"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(("collaborator", "operation"), SITES)
def test_every_error_of_a_collaborator_has_its_outcome(
    world: World, collaborator: str, operation: str, error: type[ArchiveError]
) -> None:
    getattr(world, collaborator).fail[operation] = error("it failed", code=7)
    job = world.admit(media_job())

    result = world.archive(job)

    record = world.record(job)
    member = MediaRef.of(job).member
    assert world.records.leases == {}
    # A paused token is known before the try starts.
    assert record["attempts"] == ("0" if operation == "check_paused" else "1")
    if issubclass(error, PolicySkip):
        # The account's policy left it out: settled, listed as skipped, not failed.
        assert result == Skipped("it failed", "policy_size")
        assert (record["state"], record["skipped"]) == ("failed", "policy_size")
        assert member not in world.records.failed
        assert member not in world.records.pending
        assert [entry["reason"] for entry in world.records.skipped_log] == ["policy_size"]
    elif issubclass(error, PermanentError):
        assert result == Failed("it failed", 7, reason_of(error("it failed")))
        assert (record["state"], record["last_error"]) == ("failed", "it failed")
        assert member in world.records.failed
        assert member not in world.records.pending
    elif issubclass(error, RetryableError):
        assert isinstance(result, RetryLater)
        assert type(result.error) is error
        assert result.countdown > 0
        assert (record["state"], record["last_error"]) == ("queued", "it failed")
        assert float(record["next_try_at"]) > time.time()
        assert world.records.pending[member] > time.time() + result.countdown
        assert record.get("integrity_failures") == (
            "1" if issubclass(error, IntegrityError) else None
        )
    else:
        # Raised on purpose but unclassified: retrying is safe, dropping the media is not.
        assert isinstance(result, RetryLater)
        assert result.error.reason == "unexpected ArchiveError"
        assert record["state"] == "queued"
    if operation != "put_json":
        assert sidecar_key(world.key(job)) not in world.bucket.objects


def test_an_unexpected_exception_is_retried(world: World, logs: list[dict[str, Any]]) -> None:
    world.provider.fail["fetch"] = ZeroDivisionError()
    job = world.admit(media_job())
    result = world.archive(job)
    assert isinstance(result, RetryLater)
    assert result.error.reason == "unexpected ZeroDivisionError"
    assert [line["event"] for line in logs] == ["media_unexpected_error"]


# --- the records failing -------------------------------------------------------------------

UNAVAILABLE = RedisUnavailable("Redis read failed: ConnectionError")


@pytest.mark.parametrize("operation", ["get", "lease", "mark_failed"])
def test_redis_failing_outside_a_try_reaches_the_task(world: World, operation: str) -> None:
    job = world.admit(media_job(**({"media_id": "../x"} if operation == "mark_failed" else {})))
    world.records.fail[operation] = UNAVAILABLE
    with pytest.raises(RedisUnavailable):
        world.archive(job)


@pytest.mark.parametrize("operation", ["start", "mark_archived"])
def test_redis_failing_within_a_try_is_retried(world: World, operation: str) -> None:
    job = world.admit(media_job())
    world.records.fail[operation] = UNAVAILABLE
    result = world.archive(job)
    assert isinstance(result, RetryLater)
    assert reason_of(result.error) == "redis_unavailable"
    assert world.record(job)["state"] == "queued"


def test_redis_failing_when_the_retry_is_recorded_reaches_the_task(world: World) -> None:
    job = world.admit(media_job())
    world.provider.fail["fetch"] = StorageError("S3 down")
    world.records.fail["record_error"] = UNAVAILABLE
    with pytest.raises(RedisUnavailable):
        world.archive(job)


# --- the index in the bucket ----------------------------------------------------------------


def test_the_index_is_written_before_the_sidecar_which_stays_the_last_write(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)

    assert world.archive(job) == Done("archived", key)

    by_wamid, by_media_id = wamid_entry_key("", "wamid.1"), "_index/by-media-id/m1"
    assert world.bucket.writes == [by_wamid, by_media_id, sidecar_key(key)]
    entry = IndexEntry.parse(world.bucket.document(by_media_id))
    assert entry is not None
    assert (entry.phone_number_id, entry.media_id, entry.wamid) == (PHONE, "m1", "wamid.1")
    assert (entry.bucket, entry.key, entry.sidecar_key) == ("archive", key, sidecar_key(key))


def test_entries_an_earlier_try_wrote_stay_and_the_sidecar_follows(world: World) -> None:
    """A try that died between the index and the sidecar: the next one finds the entries taken
    (pointing at the same object) and writes the sidecar."""
    job = world.admit(media_job())
    key = world.key(job)
    earlier = IndexEntry.of(
        phone_number_id=PHONE,
        media_id="m1",
        wamid="wamid.1",
        bucket="archive",
        key=key,
        sidecar_key=sidecar_key(key),
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    for entry_key in entry_keys("", earlier):
        world.bucket.put_json(entry_key, earlier.document())

    assert world.archive(job) == Done("archived", key)

    assert world.bucket.writes[-1] == sidecar_key(key)
    assert IndexEntry.parse(world.bucket.document(wamid_entry_key("", "wamid.1"))) == earlier


def test_an_edit_s_wamid_is_indexed_before_its_record(world: World) -> None:
    job = world.admit(media_job())
    key = world.key(job)
    assert world.archive(job) == Done("archived", key)
    edit = media_job(wamid="wamid.edit", source="edit", original_message_id="wamid.1")
    assert world.records.admit_many([edit]) == [True]

    assert world.archive(edit) == Done("edit_recorded", key)

    assert world.bucket.writes[-2:] == [
        wamid_entry_key("", "wamid.edit"),
        edit_record_key(key, "wamid.edit"),
    ]
    entry = IndexEntry.parse(world.bucket.document(wamid_entry_key("", "wamid.edit")))
    assert entry is not None
    assert (entry.kind, entry.key, entry.media_id) == ("edit", key, "m1")
