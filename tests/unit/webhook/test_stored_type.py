"""What reaches S3's headers: only a MIME type S3 takes as it is, from the webhook, else the
look-up, else application/octet-stream; and types a browser would render are attachments."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.webhook.test_payload import message, payload
from tests.unit.webhook.test_payload import value as value_of
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import (
    MAX_MIME_TYPE,
    object_disposition,
    renders_in_browser,
    storable_mime_type,
)
from wa_media.core.provider import Fetched
from webhook.payload import parse_cloud_payload
from worker.archive import stored_type

GOOD = [
    "image/jpeg",
    "audio/ogg; codecs=opus",
    "audio/ogg;codecs=opus",
    "IMAGE/JPEG",
    "text/plain; charset=utf-8",
    'text/plain; charset="utf-8"',
    'a/b; q="x\\"y"',
    "image/jpeg;",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "a/" + "b" * 127,
    "image/jpeg; a=" + "x" * (MAX_MIME_TYPE - len("image/jpeg; a=")),
]
# What S3 (or botocore before it) refuses in a Content-Type, and what is no MIME type at all.
BAD = [
    "image/jpeg; a=\x01",
    "image/jpeg\x7f",
    "image/jpeg\x00",
    "text/html\r\nX-Amz-Meta-Evil: 1",
    "image/jpeg\n",
    "image/jpeg; name=é",
    "image/jpeg; name=日本",
    "image/\u202egepj",
    "image/jpeg; a=" + "x" * (MAX_MIME_TYPE + 1 - len("image/jpeg; a=")),
    "image/jpeg; a=" + "x" * 10_000,
    "",
    "x",
    "/",
    "image/",
    " image/jpeg",
    "image/jpeg ",
    "image/jpeg; a",
    'image/jpeg; a="unterminated',
    "image/jpeg; a=b c",
    "a/" + "b" * 128,
    "image/jpeg/png",
]


@pytest.mark.parametrize("value", GOOD)
def test_well_formed_mime_types_are_stored_as_they_are(value: str) -> None:
    assert storable_mime_type(value) == value


@pytest.mark.parametrize("value", [*BAD, None, 5, ["image/jpeg"]])
def test_anything_else_never_reaches_s3(value: object) -> None:
    assert storable_mime_type(value) is None


@pytest.mark.parametrize("mime", BAD)
def test_the_webhook_refuses_them_at_ingestion(mime: str) -> None:
    document = payload(value_of(message("image", "1", mime_type=mime)))
    [parsed] = parse_cloud_payload(document).media
    assert parsed.mime_type is None
    assert parsed.anomalies == ("mime_type_malformed",)


def job(**fields: Any) -> MediaJob:
    base: dict[str, Any] = {
        "phone_number_id": "1",
        "waba_id": None,
        "wamid": "wamid.1",
        "timestamp": 0,
        "type": "image",
        "media_id": "1",
        "mime_type": "image/jpeg",
        "sha256": None,
    }
    return MediaJob.model_validate({**base, **fields})


def fetched(mime_type: object = None) -> Fetched:
    lookup = {} if mime_type is None else {"mime_type": mime_type}
    return Fetched(None, None, lookup, iter(()))


@pytest.mark.parametrize(
    ("webhook", "looked_up", "stored", "odd"),
    [
        ("image/jpeg", "image/png", "image/jpeg", ()),
        (None, "image/png", "image/png", ()),
        (None, None, "application/octet-stream", ()),
        # A job recorded before `web` checked its type (or by an older `web`).
        ("image/jpeg; a=\x01", "image/png", "image/png", ("mime_type_malformed",)),
        ("image/jpeg; a=\x01", None, "application/octet-stream", ("mime_type_malformed",)),
        # The look-up's stands in for a missing one: it is checked the same way.
        (None, "image/jpeg\r\nX: y", "application/octet-stream", ("mime_type_malformed",)),
        (None, "image/" + "x" * 10_000, "application/octet-stream", ("mime_type_malformed",)),
        (None, "image/jpeg; name=é", "application/octet-stream", ("mime_type_malformed",)),
        (None, 42, "application/octet-stream", ("mime_type_malformed",)),
    ],
)
def test_the_stored_type_is_the_first_usable_one(
    webhook: str | None, looked_up: object, stored: str, odd: tuple[str, ...]
) -> None:
    assert stored_type(job(mime_type=webhook), fetched(looked_up)) == (stored, odd)


@pytest.mark.parametrize(
    "mime_type",
    [
        "text/html",
        "text/html; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "application/xml",
        "text/xml",
        "application/javascript",
        "text/javascript",
        "text/css",
        "text/csv",
        "application/pdf",
        "application/octet-stream",
        "video/vnd.example+xml",
    ],
)
def test_types_a_browser_would_render_are_attachments(mime_type: str) -> None:
    assert renders_in_browser(mime_type)
    assert object_disposition(job(type="image"), mime_type) == "attachment"
    assert object_disposition(job(type="sticker"), mime_type) == "attachment"


@pytest.mark.parametrize(
    "mime_type", ["image/jpeg", "image/webp", "audio/ogg; codecs=opus", "video/mp4", "text/plain"]
)
def test_media_shown_as_they_are_keep_no_disposition(mime_type: str) -> None:
    assert not renders_in_browser(mime_type)
    assert object_disposition(job(type="video"), mime_type) is None


def test_documents_stay_attachments_under_their_name() -> None:
    document = job(type="document", filename="report.html", mime_type="text/html")
    assert object_disposition(document, "text/html") == 'attachment; filename="report.html"'
    assert object_disposition(job(type="document"), "application/pdf") == "attachment"
