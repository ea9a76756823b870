"""What the worker tells an account's consumers (its EventSink), and the archive policy it
applies once the size or the MIME type is known: against the in-memory fakes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.fakes import PHONE, FakeMedia, account
from tests.unit.worker.test_archive import BODY, World, media_job
from wa_media.core.archive_policy import ArchivePolicy
from wa_media.core.errors import BrokerUnavailable, RedisUnavailable, TooBig
from wa_media.core.events import event_id
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import sidecar_key
from wa_media.core.records import MediaRecord, MediaRef
from worker.archive import Done, Failed, Skipped
from worker.clients import AccountClients


def with_policy(world: World, policy: ArchivePolicy) -> World:
    world.directory.clients = AccountClients(account(policy=policy), world.provider, world.bucket)
    return world


def ids(world: World) -> list[tuple[str, str]]:
    return [(event.type, event.id) for event in world.events.events]


# --- archived ------------------------------------------------------------------------------


def test_archived_is_told_once_the_sidecar_is_committed() -> None:
    world = World()
    job = world.admit(media_job())
    key = world.key(job)
    assert world.archive(job) == Done("archived", key)
    [event] = world.events.events
    assert event.type == "media.archived"
    assert event.id == event_id("media.archived", PHONE, "wamid.1", "m1")
    sidecar = world.bucket.document(sidecar_key(key))
    assert event.data["sidecar_key"] == sidecar_key(key)
    assert (event.data["bucket"], event.data["key"]) == ("archive", key)
    assert (event.data["size"], event.data["sha256"]) == (len(BODY), sidecar["sha256"])
    assert event.data["mime_type"] == "image/jpeg"
    assert event.data["from"] == "15550001"


def test_already_archived_and_an_edit_tell_again_with_stable_ids() -> None:
    world = World()
    job = world.admit(media_job())
    world.archive(job)
    first = world.events.events[0]
    # A duplicate task (or the retry of one whose event the sink refused): the same event.
    assert world.archive(job) == Done("already_archived", world.key(job))
    again = world.events.events[1]
    assert (again.id, again.data) == (first.id, first.data)
    assert again.timestamp == first.timestamp
    edit = media_job(wamid="wamid.edit", source="edit", original_message_id="wamid.1")
    world.records.admit_many([edit])
    assert world.archive(edit) == Done("edit_recorded", world.key(job))
    assert world.archive(edit) == Done("edit_recorded", world.key(job))
    third, fourth = world.events.events[2:]
    assert third.id == fourth.id == event_id("media.archived", PHONE, "wamid.edit", "m1")
    assert third.data["original_message_id"] == "wamid.1"
    assert third.data["size"] == first.data["size"]


# --- failed --------------------------------------------------------------------------------


def test_a_media_given_up_is_told_with_its_reason_and_code() -> None:
    world = World()
    world.provider.fail["fetch"] = TooBig("media is 2000 bytes", code=7)
    job = world.admit(media_job())
    result = world.archive(job)
    assert result == Failed("media is 2000 bytes", 7, "too_big")
    [event] = world.events.events
    assert event.type == "media.failed"
    assert (event.data["reason"], event.data["code"], event.data["label"]) == (
        "media is 2000 bytes",
        7,
        "too_big",
    )
    record = world.record(job)
    assert (record["reason_label"], record["error_code"]) == ("too_big", "7")
    # A duplicate task finds it settled: no second try, the same event.
    world.provider.fail.clear()
    assert world.archive(job) == result
    assert world.provider.fetched == [("m1", None)]
    assert ids(world)[0] == ids(world)[1]


def test_a_failure_recorded_by_the_previous_release_is_told_as_other() -> None:
    world = World()
    job = world.admit(media_job())
    world.records.hashes[MediaRef.of(job).member].update(state="failed", last_error="gone")
    assert world.archive(job) == Failed("gone", None, "other")
    assert world.events.events[0].data["label"] == "other"


def test_a_retry_is_not_told() -> None:
    world = World()
    world.provider.fail["fetch"] = RedisUnavailable("down")
    world.archive(world.admit(media_job()))
    assert world.events.events == []


# --- the sink failing ----------------------------------------------------------------------


@pytest.mark.parametrize("error", [RedisUnavailable("down"), BrokerUnavailable("down")])
@pytest.mark.parametrize("outcome", ["archived", "failed", "skipped"])
def test_an_event_the_sink_refuses_is_told_by_the_retry(error: Exception, outcome: str) -> None:
    world = World()
    if outcome == "failed":
        world.provider.fail["fetch"] = TooBig("too big")
    if outcome == "skipped":
        with_policy(world, ArchivePolicy(max_bytes=(("image", 3),)))
    job = world.admit(media_job())
    world.events.fail["emit"] = error
    # The task sees the error (and is retried); the outcome is recorded all the same.
    with pytest.raises(type(error)):
        world.archive(job)
    assert world.events.events == []
    settled = world.record(job)["state"]
    assert settled == ("archived" if outcome == "archived" else "failed")
    world.events.fail.clear()
    world.provider.fail.clear()
    world.archive(job)
    [event] = world.events.events
    assert event.type == f"media.{outcome}"
    assert event.id == event_id(f"media.{outcome}", PHONE, "wamid.1", "m1")  # type: ignore[arg-type]
    # Fetched once: the retry only told.
    assert len(world.provider.fetched) == 1


# --- skipped by the policy -----------------------------------------------------------------


def _skipped(world: World, job: MediaJob, label: str) -> dict[str, Any]:
    record = world.record(job)
    member = MediaRef.of(job).member
    assert (record["state"], record["skipped"]) == ("failed", label)
    assert record["last_error"].startswith("skipped: ")
    assert member not in world.records.failed
    assert member not in world.records.pending
    assert world.records.leases == {}
    assert world.bucket.objects == {}
    [listed] = world.records.skipped_log
    assert (listed["reason"], listed["wamid"], listed["phone_number_id"], listed["type"]) == (
        label,
        "wamid.1",
        PHONE,
        "image",
    )
    [event] = world.events.events
    assert (event.type, event.data["label"]) == ("media.skipped", label)
    return event.data


def test_a_size_over_the_limit_is_skipped_by_the_look_up() -> None:
    world = with_policy(World(), ArchivePolicy(max_bytes=(("image", len(BODY) - 1),)))
    job = world.admit(media_job())
    result = world.archive(job)
    # The provider stops before the download (FakeProvider as the real ones, by `max_bytes`).
    assert result == Skipped(
        f"media is {len(BODY)} bytes, over the account's limit of {len(BODY) - 1} bytes",
        "policy_size",
    )
    data = _skipped(world, job, "policy_size")
    assert data["reason"] == result.reason
    # Never retried: a duplicate task tells again, and fetches nothing more.
    assert world.archive(job) == result
    assert len(world.provider.fetched) == 1


def test_a_size_at_the_limit_is_archived() -> None:
    world = with_policy(World(), ArchivePolicy(max_bytes=(("image", len(BODY)),)))
    assert isinstance(world.archive(world.admit(media_job())), Done)


def test_another_types_limit_does_not_apply() -> None:
    world = with_policy(World(), ArchivePolicy(max_bytes=(("video", 1),)))
    assert isinstance(world.archive(world.admit(media_job())), Done)


def test_a_download_without_a_size_is_stopped_at_the_limit() -> None:
    # The webhook's URL: no look-up, no size until the bytes pass the limit.
    world = with_policy(World(), ArchivePolicy(max_bytes=(("image", 2),)))
    job = world.admit(media_job(url="https://lookaside.fbsbx.com/m1"))
    result = world.archive(job)
    assert result == Skipped("image passed the account's 2 bytes; stopped", "policy_size")
    assert world.bucket.aborted == [world.key(job)]
    _skipped(world, job, "policy_size")


def test_over_max_media_bytes_is_skipped_when_the_account_limit_is_lower() -> None:
    world = with_policy(World(), ArchivePolicy(max_bytes=(("image", 10),)))
    world.provider.fail["fetch"] = TooBig("media is 5000 bytes, over MAX_MEDIA_BYTES=1000")
    job = world.admit(media_job())
    result = world.archive(job)
    assert isinstance(result, Skipped)
    assert result.label == "policy_size"
    _skipped(world, job, "policy_size")


def test_a_mime_type_only_the_look_up_names_is_checked() -> None:
    world = with_policy(World(), ArchivePolicy(mime_types=("image/png",)))
    world.provider.media["m1"] = FakeMedia(BODY, mime_type="image/jpeg")
    job = world.admit(media_job(mime_type=None))
    result = world.archive(job)
    assert result == Skipped("the account does not archive image/jpeg", "policy_mime")
    _skipped(world, job, "policy_mime")


def test_a_mime_type_the_webhook_named_was_web_s_to_check() -> None:
    world = with_policy(World(), ArchivePolicy(mime_types=("image/png",)))
    assert isinstance(world.archive(world.admit(media_job(mime_type="image/jpeg"))), Done)


def test_a_replayed_skip_is_archived_once_the_limit_allows_it() -> None:
    world = with_policy(World(), ArchivePolicy(max_bytes=(("image", 1),)))
    job = world.admit(media_job())
    assert isinstance(world.archive(job), Skipped)
    record = MediaRecord.from_hash(world.record(job))
    assert (record.skipped, record.settled) == ("policy_size", True)
    # `wa-media replay` resets the record (wa_media/stores/records.py, tested against Redis).
    world.records.hashes[MediaRef.of(job).member].update(state="queued", attempts="0", skipped="")
    with_policy(world, ArchivePolicy())
    assert isinstance(world.archive(job), Done)
    assert [e.type for e in world.events.events] == ["media.skipped", "media.archived"]
    assert world.record(job)["state"] == "archived"
