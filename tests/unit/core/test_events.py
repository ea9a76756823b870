"""The archive events' builders (wa_media/core/events.py): what each says, stable ids, and the
wire form `web` hands the fan-out."""

from __future__ import annotations

import json

import pytest

from wa_media.core.events import (
    Event,
    archived_event,
    event_id,
    failed_event,
    skipped_event,
    too_large_event,
)
from wa_media.core.jobs import Customer, MediaJob

JOB = MediaJob(
    phone_number_id="106540352242922",
    waba_id="WABA1",
    wamid="wamid.1",
    sender=None,
    timestamp=1_700_000_000,
    type="document",
    media_id="m1",
    mime_type="application/pdf",
    sha256="ab" * 32,
    customer=Customer(user_id="US.1349", username="ana"),
    received_at=1_700_000_005,
)
SIDECAR = {
    "mime_type": "application/pdf",
    "size": 1234,
    "sha256": "cd" * 32,
    "bucket": "archive",
    "key": "106540352242922/2023/11/14/m1.pdf",
    "archived_at": "2023-11-14T22:13:30.500000Z",
}
CUSTOMER = {"phone": None, "user_id": "US.1349", "parent_user_id": None, "username": "ana"}


def test_archived_event() -> None:
    event = archived_event(JOB, SIDECAR, SIDECAR["key"] + ".json")
    assert event.type == "media.archived"
    assert event.phone_number_id == JOB.phone_number_id
    assert event.id == event_id("media.archived", JOB.phone_number_id, "wamid.1", "m1")
    assert event.timestamp == 1_700_000_010.5
    assert event.data == {
        "phone_number_id": "106540352242922",
        "waba_id": "WABA1",
        "wamid": "wamid.1",
        "media_id": "m1",
        "from": None,
        "customer": CUSTOMER,
        "direction": "inbound",
        "type": "document",
        "original_message_id": None,
        "mime_type": "application/pdf",
        "size": 1234,
        "sha256": "cd" * 32,
        "bucket": "archive",
        "key": SIDECAR["key"],
        "sidecar_key": SIDECAR["key"] + ".json",
    }


def test_an_edit_bringing_an_archived_media_has_its_own_event() -> None:
    edit = JOB.model_copy(update={"wamid": "wamid.edit", "original_message_id": "wamid.1"})
    event = archived_event(edit, SIDECAR, "k.json")
    assert event.id == event_id("media.archived", JOB.phone_number_id, "wamid.edit", "m1")
    assert event.id != archived_event(JOB, SIDECAR, "k.json").id
    assert (event.data["wamid"], event.data["original_message_id"]) == ("wamid.edit", "wamid.1")


def test_ids_are_stable_and_distinct() -> None:
    # The same outcome of the same media: the same id, whatever else differs (a redelivery).
    again = archived_event(JOB, {**SIDECAR, "archived_at": "2024-01-01T00:00:00Z"}, "x")
    assert again.id == archived_event(JOB, SIDECAR, "k").id
    ids = {
        archived_event(JOB, SIDECAR, "k").id,
        failed_event(JOB, "gone", 100, "not_found").id,
        skipped_event(JOB, "policy_size", "too large").id,
        archived_event(JOB.model_copy(update={"phone_number_id": "2"}), SIDECAR, "k").id,
        archived_event(JOB.model_copy(update={"media_id": "m2"}), SIDECAR, "k").id,
    }
    assert len(ids) == 5
    assert all(i.startswith("evt_") and len(i) == 36 for i in ids)
    assert event_id("media.failed", "1", "w", "m") == event_id("media.failed", "1", "w", "m")


def test_a_sidecar_without_its_time_dates_the_event_by_the_webhook() -> None:
    assert archived_event(JOB, {}, "k.json").timestamp == 1_700_000_005.0


def test_failed_event() -> None:
    event = failed_event(JOB, "media id unknown", 100, "not_found", at=5.0)
    assert (event.type, event.timestamp) == ("media.failed", 5.0)
    assert event.id == event_id("media.failed", JOB.phone_number_id, "wamid.1", "m1")
    assert {k: event.data[k] for k in ("reason", "code", "label", "media_id", "sha256")} == {
        "reason": "media id unknown",
        "code": 100,
        "label": "not_found",
        "media_id": "m1",
        "sha256": "ab" * 32,
    }
    assert event.data["customer"] == CUSTOMER


def test_skipped_event() -> None:
    event = skipped_event(JOB, "policy_size", "over 10 bytes", size=11, mime_type="x/y", at=6.0)
    assert (event.type, event.timestamp) == ("media.skipped", 6.0)
    assert event.id == event_id("media.skipped", JOB.phone_number_id, "wamid.1", "m1")
    assert {k: event.data[k] for k in ("reason", "code", "label", "size", "mime_type")} == {
        "reason": "over 10 bytes",
        "code": None,
        "label": "policy_size",
        "size": 11,
        "mime_type": "x/y",
    }


def test_too_large_event() -> None:
    event = too_large_event("pn", "WABA1", "wamid.9", Customer(phone="16505551234"), at=7.0)
    assert (event.type, event.timestamp) == ("media.failed", 7.0)
    assert event.id == event_id("media.failed", "pn", "wamid.9", "")
    assert event.data["code"] == 131052
    assert event.data["label"] == "too_large"
    assert event.data["media_id"] is None
    assert event.data["from"] == "16505551234"
    assert event.data["customer"]["phone"] == "16505551234"
    assert too_large_event("pn", None, "wamid.9", None, at=8.0).id == event.id


def test_the_wire_form_round_trips_through_json() -> None:
    for event in (
        archived_event(JOB, SIDECAR, "k.json"),
        failed_event(JOB, "r", None, "other", at=1.0),
        too_large_event("pn", None, "w", None, at=2),
    ):
        assert Event.from_wire(json.loads(json.dumps(event.to_wire()))) == event


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {},
        {"type": "media.deleted", "phone_number_id": "p", "id": "e", "timestamp": 1, "data": {}},
        {"type": "media.failed", "phone_number_id": "", "id": "e", "timestamp": 1, "data": {}},
        {"type": "media.failed", "phone_number_id": "p", "id": 3, "timestamp": 1, "data": {}},
        {"type": "media.failed", "phone_number_id": "p", "id": "e", "timestamp": "1", "data": {}},
        {"type": "media.failed", "phone_number_id": "p", "id": "e", "timestamp": True, "data": {}},
        {"type": "media.failed", "phone_number_id": "p", "id": "e", "timestamp": 1, "data": []},
    ],
)
def test_a_malformed_wire_event_is_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="event"):
        Event.from_wire(raw)
