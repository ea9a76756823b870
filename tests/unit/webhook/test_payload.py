import base64
import hashlib
from typing import Any

import pytest

from wa_media.core.errors import NotWhatsAppPayload
from webhook.payload import parse_cloud_payload, parse_onprem_payload

DIGEST = hashlib.sha256(b"file").digest()
B64 = base64.b64encode(DIGEST).decode()


def message(kind: str, media_id: str = "111", **media: Any) -> dict[str, Any]:
    obj = {"id": media_id, "mime_type": "image/jpeg", "sha256": B64, **media}
    return {
        "from": "16505551234",
        "id": f"wamid.{media_id}",
        "timestamp": "1700000000",
        "type": kind,
        kind: obj,
    }


def payload(*values: dict[str, Any], waba: str = "WABA1") -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": v} for v in values]}],
    }


def value(*messages: dict[str, Any], pnid: str = "PN1", **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
        "messages": list(messages),
        **extra,
    }


def test_image_becomes_a_job_with_every_field() -> None:
    parsed = parse_cloud_payload(payload(value(message("image", caption="hi"))))
    [job] = parsed.media
    assert job.phone_number_id == "PN1"
    assert job.waba_id == "WABA1"
    assert job.wamid == "wamid.111"
    assert job.sender == "16505551234"
    assert job.timestamp == 1700000000
    assert job.type == "image"
    assert job.media_id == "111"
    assert job.mime_type == "image/jpeg"
    assert job.sha256 == DIGEST.hex()
    assert job.caption == "hi"
    assert (job.filename, job.voice, job.animated) == (None, None, None)


def test_type_specific_fields() -> None:
    parsed = parse_cloud_payload(
        payload(
            value(
                message("document", "1", filename="a.pdf", mime_type="application/pdf"),
                message("audio", "2", voice=True, mime_type="audio/ogg; codecs=opus"),
                message("sticker", "3", animated=True, mime_type="image/webp"),
                message("video", "4", mime_type="video/mp4"),
            )
        )
    )
    by_id = {job.media_id: job for job in parsed.media}
    assert by_id["1"].filename == "a.pdf"
    assert by_id["2"].voice is True
    assert by_id["3"].animated is True
    assert by_id["4"].type == "video"


def test_every_entry_change_and_message_is_read() -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "W1",
                "changes": [
                    {
                        "field": "messages",
                        "value": value(message("image", "1"), message("image", "2")),
                    },
                    {"field": "messages", "value": value(message("image", "3"), pnid="PN2")},
                ],
            },
            {"id": "W2", "changes": [{"field": "messages", "value": value(message("video", "4"))}]},
        ],
    }
    parsed = parse_cloud_payload(document)
    assert [(j.media_id, j.phone_number_id, j.waba_id) for j in parsed.media] == [
        ("1", "PN1", "W1"),
        ("2", "PN1", "W1"),
        ("3", "PN2", "W1"),
        ("4", "PN1", "W2"),
    ]


def test_hex_digest_is_accepted_too() -> None:
    parsed = parse_cloud_payload(payload(value(message("image", sha256=DIGEST.hex()))))
    assert parsed.media[0].sha256 == DIGEST.hex()


def too_big(wamid: str = "wamid.big") -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": wamid,
        "timestamp": "1700000000",
        "type": "unsupported",
        "errors": [{"code": 131052, "title": "Media file size too big", "message": "x"}],
    }


def test_131052_on_an_inbound_message_owes_one_reply() -> None:
    parsed = parse_cloud_payload(payload(value(too_big())))
    [reply] = parsed.replies
    assert (reply.phone_number_id, reply.wamid, reply.to, reply.error_code) == (
        "PN1",
        "wamid.big",
        "16505551234",
        131052,
    )
    assert parsed.media == []


def test_131052_at_account_or_status_level_is_only_recorded() -> None:
    error = {"code": 131052, "title": "t", "message": "m"}
    status = {"id": "wamid.out", "status": "failed", "errors": [error]}
    parsed = parse_cloud_payload(payload(value(errors=[error], statuses=[status])))
    assert parsed.replies == []
    assert {(n.event, n.code) for n in parsed.notices} == {
        ("account_error", 131052),
        ("status_error", 131052),
    }


def test_other_types_and_statuses_are_ignored() -> None:
    text = {"from": "1", "id": "wamid.t", "timestamp": "1", "type": "text", "text": {"body": "x"}}
    odd = {"from": "1", "id": "wamid.o", "timestamp": "1", "type": "hologram"}
    status = {"id": "wamid.s", "status": "delivered"}
    parsed = parse_cloud_payload(payload(value(text, odd, statuses=[status])))
    assert parsed.media == []
    assert parsed.replies == []
    assert [(s.reason, s.wamid) for s in parsed.skipped] == [
        ("not_media", "wamid.t"),
        ("unknown_type", "wamid.o"),
        ("status", "wamid.s"),
    ]


def test_odd_fields_are_anomalies_and_the_media_is_kept() -> None:
    broken = message("image", "bad")
    del broken["image"]["mime_type"]
    no_ts = message("image", "nots")
    no_ts["timestamp"] = "yesterday"
    bad_digest = message("image", "dig", sha256="not-a-digest")
    no_id = message("image", "noid")
    del no_id["image"]["id"]
    parsed = parse_cloud_payload(
        payload(value(broken, no_ts, bad_digest, "junk", no_id, message("image", "ok"))),
        received_at=1_800_000_000,
    )  # type: ignore[arg-type]
    assert [(job.media_id, job.anomalies) for job in parsed.media] == [
        ("bad", ("mime_type_missing",)),
        ("nots", ("timestamp_malformed",)),
        ("dig", ("sha256_malformed",)),
        ("ok", ()),
    ]
    assert parsed.media[1].timestamp == 1_800_000_000
    assert parsed.media[2].sha256 is None
    assert [(s.reason, s.wamid) for s in parsed.skipped] == [
        ("unknown_type", None),
        ("malformed", "wamid.noid"),
    ]
    assert [s.listed for s in parsed.skipped] == [False, True]


def test_non_message_fields_are_ignored() -> None:
    document = payload(value(message("image")))
    document["entry"][0]["changes"][0]["field"] = "account_update"
    assert parse_cloud_payload(document).media == []


@pytest.mark.parametrize(
    "document",
    [
        [],
        "text",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
    ],
)
def test_not_a_whatsapp_payload(document: Any) -> None:
    with pytest.raises(NotWhatsAppPayload):
        parse_cloud_payload(document)


def test_garbage_inside_a_valid_envelope_never_raises() -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            None,
            1,
            {"changes": "x"},
            {"changes": [None, {"value": []}, {"value": {"messages": {}}}]},
        ],
    }
    assert parse_cloud_payload(document).media == []


def test_messages_for_numbers_not_accepted_are_skipped_with_a_notice() -> None:
    doc = payload(
        {"metadata": {"phone_number_id": "1"}, "messages": [message("image", "a")]},
        {"metadata": {"phone_number_id": "2"}, "messages": [message("image", "b")]},
    )
    parsed = parse_cloud_payload(doc, accepts=lambda number: number == "1")
    assert [job.media_id for job in parsed.media] == ["a"]
    assert [(s.reason, s.phone_number_id, s.listed) for s in parsed.skipped] == [
        ("unknown_account", "2", True)
    ]


def test_onprem_payload_names_no_number_the_account_gives_it() -> None:
    voice = {
        "from": "16505551234",
        "id": "gBEGkYiEB1VXAglK1ZEqA1YKPrU",
        "timestamp": "1700000000",
        "type": "voice",
        "voice": {
            "id": "b1c68f38-8734-4ad3-b4a1-ef0c10d683",
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": DIGEST.hex(),
            "file": "/usr/local/wamedia/shared/b1c68f38",
        },
    }
    document = message("document", "c3", filename="a.pdf")
    too_big = {
        "from": "16505550000",
        "id": "gBEGkYiEB1VXAglK1ZEqA1YKPrA",
        "timestamp": "1700000000",
        "type": "unknown",
        "errors": [{"code": 131052, "title": "Media download error"}],
    }
    parsed = parse_onprem_payload(
        {"contacts": [], "messages": [voice, document, too_big]}, "15550001111"
    )
    audio, doc = parsed.media
    assert (audio.type, audio.voice, audio.sha256) == ("audio", True, DIGEST.hex())
    assert audio.phone_number_id == doc.phone_number_id == "15550001111"
    assert audio.waba_id is None
    assert doc.filename == "a.pdf"
    assert [(r.to, r.phone_number_id) for r in parsed.replies] == [("16505550000", "15550001111")]


@pytest.mark.parametrize(
    "document",
    [[], {}, {"object": "whatsapp_business_account", "entry": []}, {"messages": "x"},
     {"messages": [], "errors": {}}, "messages"],
)  # fmt: skip
def test_onprem_parser_refuses_what_is_not_an_onprem_payload(document: Any) -> None:
    with pytest.raises(NotWhatsAppPayload):
        parse_onprem_payload(document, "1")


def test_onprem_statuses_only_payload_is_fine() -> None:
    parsed = parse_onprem_payload({"statuses": [{"id": "x", "status": "read"}]}, "1")
    assert (parsed.media, [s.reason for s in parsed.skipped]) == ([], ["status"])
