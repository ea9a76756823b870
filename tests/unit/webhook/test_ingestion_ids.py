"""Payload values are checked where they enter: ids are bounded printable ASCII without path or
control characters (a media that lacks one is skipped as `malformed` and listed, its values
never recorded as they came), and captions and filenames are bounded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.webhook.test_payload import message, payload, value
from webhook.payload import MAX_CAPTION, MAX_FILENAME, parse_cloud_payload, parse_onprem_payload

HOSTILE_IDS = [
    "../1",
    "1/2",
    "a\\b",
    "..",
    ".",
    "1 2",
    "1\n",
    "1\x00",
    "\x1b[31m1",
    "\uff11\uff12\uff13",  # full-width digits
    "1\u202e",
    "é",
    "1" * 129,
]


def parse(*messages: dict[str, Any], **extra: Any) -> Any:
    return parse_cloud_payload(payload(value(*messages, **extra)))


def only_skip(parsed: Any) -> Any:
    assert parsed.media == []
    [skip] = parsed.skipped
    assert skip.reason == "malformed"
    assert skip.listed
    return skip


@pytest.mark.parametrize("media_id", HOSTILE_IDS)
def test_a_media_id_that_cannot_name_an_object_is_skipped_and_listed(media_id: str) -> None:
    item = message("image", media_id)
    item["id"] = "wamid.1"
    skip = only_skip(parse(item))
    assert skip.wamid == "wamid.1"
    assert skip.detail.startswith("malformed image message: image.id is not 1 to 128 of")
    assert skip.type == "image"
    # The value is shown escaped in the detail, never as it came.
    assert skip.detail.isascii()
    assert all(char.isprintable() for char in skip.detail)


@pytest.mark.parametrize(
    "media_id",
    ["1234567890123456", "f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68", "a_b.c-d", "1" * 128],
)
def test_real_media_ids_pass(media_id: str) -> None:
    [job] = parse(message("image", media_id)).media
    assert job.media_id == media_id


@pytest.mark.parametrize(
    "wamid", ["wamid.1/../2\x00", "wamid x", "wamid.\x1b", "wamid.日本", "w" * 257, "wamid\\1"]
)
def test_a_malformed_wamid_is_skipped_and_never_recorded(wamid: str) -> None:
    item = message("image", "1")
    item["id"] = wamid
    skip = only_skip(parse(item))
    assert skip.wamid is None
    assert skip.detail.startswith("the message id is not 1 to 256 of")
    assert all(char.isprintable() for char in skip.detail)


@pytest.mark.parametrize(
    "wamid",
    [
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        "wamid.HBgL+/x=",
        "gBGGFlA5FpafAgkOuJbRq54qwbM",
        "ABEGkYiEB1VXAglK1ZE-qA1YKPrU_x",
    ],
)
def test_real_wamids_pass(wamid: str) -> None:
    item = message("image", "1")
    item["id"] = wamid
    [job] = parse(item).media
    assert job.wamid == wamid


def test_a_text_with_a_malformed_id_is_still_only_a_text() -> None:
    text = {"from": "1", "id": "wamid.\x00", "timestamp": "1", "type": "text", "text": {}}
    [skip] = parse(text).skipped
    assert (skip.reason, skip.wamid, skip.listed) == ("not_media", None, False)


@pytest.mark.parametrize("number", ["../PN", "PN\n", "PN 1", "\x1b[2J", "1" * 129, ".."])
def test_a_malformed_phone_number_id_skips_every_media_of_its_change(number: str) -> None:
    parsed = parse(message("image", "1"), message("video", "2"), pnid=number)
    assert parsed.media == []
    assert [(s.reason, s.phone_number_id, s.listed) for s in parsed.skipped] == [
        ("malformed", None, True),
        ("malformed", None, True),
    ]
    assert parsed.skipped[0].detail.startswith("metadata.phone_number_id is not 1 to 128 of")


def test_a_malformed_phone_number_id_is_never_named_as_an_unknown_account() -> None:
    document = payload(value(message("image", "1"), pnid="PN\x1b[2J"))
    parsed = parse_cloud_payload(document, accepts=lambda number: number == "PN1")
    [skip] = parsed.skipped
    assert skip.reason == "malformed"
    assert "\x1b" not in skip.detail


@pytest.mark.parametrize("field", ["from_user_id", "from_parent_user_id"])
@pytest.mark.parametrize("bsuid", ["US.1/2", "US.\x00", "US 1", "US." + "1" * 300])
def test_a_malformed_bsuid_of_the_message_skips_it(field: str, bsuid: str) -> None:
    item = message("image", "1")
    item[field] = bsuid
    skip = only_skip(parse(item))
    assert f"{field} is not 1 to 256 of" in skip.detail


def test_a_malformed_bsuid_in_contacts_is_left_out() -> None:
    contacts = [{"wa_id": "16505551234", "user_id": "US.\x1b[2J", "parent_user_id": "a/b"}]
    [job] = parse(message("image", "1"), contacts=contacts).media
    assert job.customer is not None
    assert (job.customer.user_id, job.customer.parent_user_id) == (None, None)


def test_real_bsuids_pass() -> None:
    item = message("image", "1")
    item["from_user_id"] = "US.13491208655302741918"
    item["from_parent_user_id"] = "US.ENT.11815799212886844830"
    [job] = parse(item).media
    assert job.customer is not None
    assert job.customer.user_id == "US.13491208655302741918"
    assert job.customer.parent_user_id == "US.ENT.11815799212886844830"


def test_an_edit_naming_a_malformed_original_is_skipped() -> None:
    edit = {
        "from": "16505551234",
        "id": "wamid.edit",
        "timestamp": "1700000000",
        "type": "edit",
        "edit": {"original_message_id": "wamid.\x00", "message": message("image", "2")},
    }
    skip = only_skip(parse(edit))
    assert "edit.original_message_id is not" in skip.detail


def test_a_131052_with_a_malformed_wamid_owes_no_reply_and_is_listed() -> None:
    item = {
        "from": "16505551234",
        "id": "wamid.\x1b",
        "timestamp": "1700000000",
        "type": "unsupported",
        "errors": [{"code": 131052, "title": "Media download error"}],
    }
    parsed = parse(item)
    assert parsed.replies == []
    [skip] = parsed.skipped
    assert (skip.reason, skip.wamid) == ("malformed", None)


def test_on_premises_ids_are_checked_the_same_way() -> None:
    document = {
        "messages": [
            {
                "from": "16505551234",
                "id": "gBGGFlA5FpafAgkOuJbRq54qwbM",
                "timestamp": "1700000000",
                "type": "image",
                "image": {"id": "../etc", "mime_type": "image/jpeg", "sha256": "ab" * 32},
            }
        ]
    }
    parsed = parse_onprem_payload(document, "15550001111")
    skip = only_skip(parsed)
    assert skip.phone_number_id == "15550001111"


# --- captions and filenames -------------------------------------------------------------------


def test_a_caption_past_its_bound_is_cut_and_flagged() -> None:
    [job] = parse(message("image", "1", caption="é" * (MAX_CAPTION + 1000))).media
    assert job.caption == "é" * MAX_CAPTION
    assert job.anomalies == ("caption_truncated",)


def test_a_caption_at_its_bound_is_kept_whole() -> None:
    [job] = parse(message("image", "1", caption="x" * MAX_CAPTION)).media
    assert job.caption == "x" * MAX_CAPTION
    assert job.anomalies == ()


def test_a_filename_past_its_bound_is_cut_and_flagged() -> None:
    name = "a" * 300 + ".pdf"
    [job] = parse(message("document", "1", filename=name, mime_type="application/pdf")).media
    assert job.filename == name[:MAX_FILENAME]
    assert job.anomalies == ("filename_truncated",)


def test_a_filename_of_another_media_is_dropped_unflagged() -> None:
    [job] = parse(message("image", "1", filename="a" * 300)).media
    assert (job.filename, job.anomalies) == (None, ())


def test_the_bounds() -> None:
    # WhatsApp's captions hold 1,024 characters: a margin, not a cut of real captions.
    assert (MAX_CAPTION, MAX_FILENAME) == (4096, 255)
