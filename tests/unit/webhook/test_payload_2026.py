"""The payload shapes of 2025 and 2026: BSUID senders, edits, coexistence echoes, history, and
360dialog's partner envelope (pure parsing; the conformance corpus runs them end to end)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from wa_media.core.identity import is_bsuid
from wa_media.core.jobs import Customer, MediaJob, ReplyJob
from webhook.payload import LISTED_REASONS, SKIP_REASONS, parse_cloud_payload

DIGEST = hashlib.sha256(b"x").digest()
B64 = base64.b64encode(DIGEST).decode()
BUSINESS = "15550783881"
NUMBER = "106540352242922"
BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
NOW = 1_800_000_000


def image(media_id: str = "m1", **extra: Any) -> dict[str, Any]:
    return {"id": media_id, "mime_type": "image/jpeg", "sha256": B64, **extra}


def change(field: str, **value: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": BUSINESS, "phone_number_id": NUMBER}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba",
                "changes": [
                    {
                        "field": field,
                        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
                    }
                ],
            }
        ],
    }


def parse(document: dict[str, Any], **options: Any) -> Any:
    return parse_cloud_payload(document, received_at=NOW, **options)


def test_a_customer_without_a_phone_number_is_archived_by_bsuid() -> None:
    message = {
        "id": "wamid.u",
        "timestamp": "1700000000",
        "type": "image",
        "image": image(),
        "from_user_id": BSUID,
    }
    contacts = [
        {"profile": {"name": "A", "username": "ana"}, "user_id": BSUID, "parent_user_id": PARENT}
    ]
    [job] = parse(change("messages", contacts=contacts, messages=[message])).media
    assert job.sender is None
    assert job.customer == Customer(user_id=BSUID, parent_user_id=PARENT, username="ana")
    assert (job.direction, job.source) == ("inbound", "messages")


def test_a_customer_with_phone_and_bsuid_keeps_both() -> None:
    message = {
        "from": "16505551234",
        "id": "wamid.p",
        "timestamp": "1",
        "type": "image",
        "image": image(),
    }
    contacts = [{"profile": {"name": "B"}, "wa_id": "16505551234", "user_id": BSUID}]
    [job] = parse(change("messages", contacts=contacts, messages=[message])).media
    assert job.sender == "16505551234"
    assert job.customer == Customer(phone="16505551234", user_id=BSUID)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        (
            {"from": "16505551234"},
            ReplyJob(phone_number_id=NUMBER, wamid="wamid.t", to="16505551234", error_code=131052),
        ),
        (
            {"from_user_id": BSUID},
            ReplyJob(phone_number_id=NUMBER, wamid="wamid.t", recipient=BSUID, error_code=131052),
        ),
    ],
)
def test_a_131052_is_answered_by_phone_else_by_bsuid(
    sender: dict[str, str], expected: ReplyJob
) -> None:
    message = {
        **sender,
        "id": "wamid.t",
        "timestamp": "1",
        "type": "unsupported",
        "errors": [{"code": 131052}],
    }
    assert parse(change("messages", messages=[message])).replies == [expected]


def test_a_131052_with_nobody_to_answer_is_listed_as_malformed() -> None:
    message = {
        "id": "wamid.t",
        "timestamp": "1",
        "type": "unsupported",
        "errors": [{"code": 131052}],
    }
    parsed = parse(change("messages", messages=[message]))
    assert parsed.replies == []
    assert [(s.reason, s.listed) for s in parsed.skipped] == [("malformed", True)]


def test_an_edit_carrying_media_is_archived_with_its_original() -> None:
    edit = {
        "from": "16505551234",
        "id": "wamid.edit",
        "timestamp": "1700000100",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.orig",
            "message": {
                "context": {"id": "wamid.ctx"},
                "type": "image",
                "image": image("m2", caption="new"),
            },
        },
    }
    [job] = parse(change("messages", messages=[edit])).media
    assert (job.wamid, job.original_message_id, job.source) == ("wamid.edit", "wamid.orig", "edit")
    assert (job.media_id, job.caption, job.timestamp) == ("m2", "new", 1700000100)


def test_an_edit_of_a_text_is_not_media() -> None:
    edit = {
        "from": "1",
        "id": "w",
        "timestamp": "1",
        "type": "edit",
        "edit": {"message": {"type": "text", "text": {"body": "x"}}},
    }
    assert [s.reason for s in parse(change("messages", messages=[edit])).skipped] == ["not_media"]


def test_an_echo_is_outbound_media_to_the_customer() -> None:
    echo = {
        "from": BUSINESS,
        "to": "16505551234",
        "to_user_id": BSUID,
        "id": "wamid.e",
        "timestamp": "1",
        "type": "image",
        "image": image(),
    }
    [job] = parse(change("smb_message_echoes", message_echoes=[echo])).media
    assert (job.direction, job.source, job.sender) == ("outbound", "smb_message_echoes", BUSINESS)
    assert job.customer == Customer(phone="16505551234", user_id=BSUID)
    assert job.window_start == NOW


def test_an_account_may_keep_outbound_media_out_of_the_archive() -> None:
    echo = {
        "from": BUSINESS,
        "to": "1",
        "id": "wamid.e",
        "timestamp": "1",
        "type": "image",
        "image": image(),
    }
    parsed = parse(
        change("smb_message_echoes", message_echoes=[echo]), archives_outbound=lambda _: False
    )
    assert parsed.media == []
    assert [(s.reason, s.wamid, s.listed) for s in parsed.skipped] == [
        ("outbound_off", "wamid.e", True)
    ]


def history(*messages: dict[str, Any]) -> dict[str, Any]:
    threads = [{"id": "16505551234", "messages": list(messages)}]
    return {
        "history": [
            {"metadata": {"phase": 0, "chunk_order": 1, "progress": 10}, "threads": threads}
        ]
    }


def test_history_media_of_both_directions_count_from_the_webhook() -> None:
    ten_days_ago = str(NOW - 10 * 86400)
    received = {
        "from": "16505551234",
        "id": "wamid.h1",
        "timestamp": ten_days_ago,
        "type": "image",
        "image": image("h1"),
        "history_context": {"status": "READ"},
    }
    sent = {
        "from": BUSINESS,
        "to": "16505551234",
        "id": "wamid.h2",
        "timestamp": ten_days_ago,
        "type": "image",
        "image": image("h2"),
    }
    no_id = {
        "from": "16505551234",
        "id": "wamid.h3",
        "timestamp": ten_days_ago,
        "type": "image",
        "image": {"mime_type": "image/jpeg"},
    }
    parsed = parse(change("history", **history(received, sent, no_id)))
    assert [(j.media_id, j.direction, j.source) for j in parsed.media] == [
        ("h1", "inbound", "history"),
        ("h2", "outbound", "history"),
    ]
    assert all(j.timestamp == NOW - 10 * 86400 and j.window_start == NOW for j in parsed.media)
    assert [(s.reason, s.wamid) for s in parsed.skipped] == [("no_media_id", "wamid.h3")]


def test_360dialog_partner_envelope_is_read_as_meta_s() -> None:
    message = {
        "from": "16505551234",
        "id": "wamid.h1",
        "timestamp": "1",
        "type": "image",
        "image": image("p1"),
    }
    document = {
        "id": "event-1",
        "event": "history",
        "data": {
            "id": "waba",
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": NUMBER},
            **history(message),
        },
    }
    [job] = parse(document).media
    assert (job.media_id, job.waba_id, job.source) == ("p1", "waba", "history")


def test_other_fields_are_counted_not_failed() -> None:
    parsed = parse(change("account_update", event="VERIFIED_ACCOUNT"))
    assert [s.reason for s in parsed.skipped] == ["other_field"]


def test_unknown_fields_and_types_never_fail_the_payload() -> None:
    future = {
        "from": "1",
        "id": "w1",
        "timestamp": "1",
        "type": "hologram",
        "hologram": {},
        "shiny": True,
    }
    known = {
        "from": "1",
        "id": "w2",
        "timestamp": "1",
        "type": "image",
        "image": image(future_field=1),
        "x": [1],
    }
    parsed = parse(change("messages", messages=[future, known], surprise={"a": 1}))
    assert [j.media_id for j in parsed.media] == ["m1"]
    assert [s.reason for s in parsed.skipped] == ["unknown_type"]


def test_listed_reasons_are_reasons() -> None:
    assert set(LISTED_REASONS) <= set(SKIP_REASONS)


LEGACY_JOB = {
    "phone_number_id": NUMBER,
    "waba_id": "waba",
    "wamid": "wamid.1",
    "sender": "16505551234",
    "timestamp": 1700000000,
    "type": "audio",
    "media_id": "m1",
    "mime_type": "audio/ogg",
    "sha256": DIGEST.hex(),
    "caption": None,
    "filename": None,
    "voice": True,
    "animated": None,
}


def test_a_job_of_the_first_release_reads_as_inbound_from_its_sender() -> None:
    job = MediaJob.model_validate_json(json.dumps(LEGACY_JOB))
    assert (job.direction, job.source, job.customer, job.anomalies) == (
        "inbound",
        "messages",
        None,
        (),
    )
    assert job.window_start == 1700000000


def test_a_job_with_nothing_new_travels_as_the_first_release_wrote_it() -> None:
    """An older worker (extra fields forbidden) reads what this release writes for it."""
    wire = MediaJob.model_validate(LEGACY_JOB).to_wire()
    assert wire == {k: v for k, v in LEGACY_JOB.items() if v is not None or k in ("waba_id",)}
    reply = ReplyJob(phone_number_id=NUMBER, wamid="w", to="1", error_code=131052)
    assert reply.to_wire() == {
        "phone_number_id": NUMBER,
        "wamid": "w",
        "to": "1",
        "error_code": 131052,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (BSUID, True),
        (PARENT, True),
        ("16505551234", False),
        ("+16505551234", False),
        ("us.1", False),
        ("US.", False),
    ],
)
def test_bsuid_form(value: str, expected: bool) -> None:
    assert is_bsuid(value) is expected


def test_a_131052_in_history_owes_no_warning() -> None:
    old = {
        "from": "16505551234",
        "id": "wamid.old",
        "timestamp": "1",
        "type": "unsupported",
        "errors": [{"code": 131052}],
    }
    parsed = parse(change("history", **history(old)))
    assert parsed.replies == []
    assert [s.reason for s in parsed.skipped] == ["unsupported"]


def test_a_message_meta_could_not_deliver_is_unsupported_whatever_its_type() -> None:
    older = {
        "from": "1",
        "id": "w",
        "timestamp": "1",
        "type": "unknown",
        "errors": [{"code": 131051}],
    }
    parsed = parse(change("messages", messages=[older]))
    assert [(s.reason, s.type) for s in parsed.skipped] == [("unsupported", "unknown")]
