import json
from datetime import UTC, datetime

import pytest

from wa_media.core.errors import InvalidId
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import (
    EXTENSIONS,
    build_key,
    content_disposition,
    extension_for,
    object_metadata,
    sidecar,
    sidecar_key,
)

TS = 1700000000  # 2023-11-14T22:13:20Z


def job(**changes: object) -> MediaJob:
    base = {
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "wamid": "wamid.HBgL",
        "sender": "16505551234",
        "timestamp": TS,
        "type": "document",
        "media_id": "1234567890",
        "mime_type": "application/pdf",
        "sha256": "ab" * 32,
        "filename": "report.pdf",
    }
    return MediaJob.model_validate({**base, **changes})


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "106540352242922/2023/11/14/1234567890.pdf"),
        ("archive", "archive/106540352242922/2023/11/14/1234567890.pdf"),
        ("/archive/wa/", "archive/wa/106540352242922/2023/11/14/1234567890.pdf"),
    ],
)
def test_key(prefix: str, expected: str) -> None:
    assert build_key(prefix, "106540352242922", TS, "1234567890", "application/pdf") == expected


def test_key_date_is_utc() -> None:
    # 23:30 UTC on 31 Dec is already 1 Jan in UTC+1; the key uses UTC.
    ts = int(datetime(2025, 12, 31, 23, 30, tzinfo=UTC).timestamp())
    assert "/2025/12/31/" in build_key("", "p", ts, "m", "image/jpeg")


@pytest.mark.parametrize(
    ("mime", "ext"),
    [
        ("audio/ogg; codecs=opus", ".ogg"),
        ("AUDIO/OGG", ".ogg"),
        ("image/jpeg", ".jpg"),
        ("image/webp", ".webp"),
        ("video/3gpp", ".3gp"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"),
        ("application/x-msdownload", ".bin"),
        ("", ".bin"),
    ],
)
def test_extension(mime: str, ext: str) -> None:
    assert extension_for(mime) == ext


def test_extension_table_covers_the_supported_types() -> None:
    supported = {
        "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg",
        "text/plain", "application/vnd.ms-excel", "application/msword",
        "application/vnd.ms-powerpoint", "application/pdf",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "image/jpeg", "image/png", "image/webp", "video/mp4", "video/3gpp",
    }  # fmt: skip
    assert supported <= EXTENSIONS.keys()


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "a b", "x" * 129, "é", "a\x00", "../x"])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        build_key("", bad, TS, "m", "image/jpeg")
    with pytest.raises(InvalidId):
        build_key("", "p", TS, bad, "image/jpeg")


def test_edge_ids_are_accepted() -> None:
    assert build_key("", "a" * 128, TS, "x.y-z_1", "image/png").endswith("/x.y-z_1.png")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (None, "attachment"),
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ('a"b\r\n.pdf', "attachment; filename=\"a_b.pdf\"; filename*=UTF-8''a%22b.pdf"),
        (
            "résumé.pdf",
            "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        ("合同.pdf", "attachment; filename=\"pdf\"; filename*=UTF-8''%E5%90%88%E5%90%8C.pdf"),
    ],
)
def test_content_disposition(filename: str | None, expected: str) -> None:
    assert content_disposition(filename) == expected


def test_content_disposition_is_ascii_and_bounded() -> None:
    header = content_disposition("\U0001f600" * 10_000 + ".pdf")
    assert header.isascii()
    assert len(header) < 4000
    assert "\r" not in header
    assert "\n" not in header


def test_metadata_is_header_safe() -> None:
    meta = object_metadata(job(wamid="wamid.é\n", sender="1"), "cd" * 32)
    assert meta == {
        "sha256": "cd" * 32,
        "wamid": "wamid.__",
        "from": "1",
        "media-type": "document",
        "direction": "inbound",
    }


def test_sidecar_has_exactly_the_contract_fields() -> None:
    document = sidecar(
        job(caption=None),
        bucket="b",
        key="k",
        sha256_hex="cd" * 32,
        size=10,
        lookup={"url": "https://x", "id": "1234567890", "file_size": 10, "sha256": "cd" * 32},
        archived_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert list(document) == [
        "schema", "media_id", "phone_number_id", "waba_id", "wamid", "from", "timestamp",
        "type", "caption", "filename", "voice", "animated", "mime_type", "sha256", "size",
        "bucket", "key", "archived_at", "lookup",
        "direction", "source", "customer", "url_source", "original_message_id", "received_at",
        "anomalies",
    ]  # fmt: skip
    assert document["schema"] == 2
    assert document["archived_at"] == "2026-01-02T03:04:05Z"
    assert "url" not in document["lookup"]
    assert document["caption"] is None
    json.dumps(document)
    assert sidecar_key("a/b.pdf") == "a/b.pdf.json"
