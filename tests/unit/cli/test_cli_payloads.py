"""The webhook payloads `wa-media simulate` sends (wa_media/cli/payloads.py): shapes, signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from wa_media.cli import payloads

SHA_B64 = base64.b64encode(hashlib.sha256(b"media").digest()).decode()


def test_sign_known_answer() -> None:
    expected = hmac.new(b"secret", b'{"a":1}', hashlib.sha256).hexdigest()

    signature = payloads.sign(b'{"a":1}', "secret")

    assert signature == f"sha256={expected}"
    assert signature == "sha256=aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494"


@pytest.mark.parametrize(
    ("kind", "wire_type", "fields"),
    [
        ("image", "image", {"id", "mime_type", "sha256"}),
        ("video", "video", {"id", "mime_type", "sha256"}),
        ("document", "document", {"id", "mime_type", "sha256", "filename"}),
        ("audio", "audio", {"id", "mime_type", "sha256", "voice"}),
        ("voice", "audio", {"id", "mime_type", "sha256", "voice"}),
        ("sticker", "sticker", {"id", "mime_type", "sha256", "animated"}),
    ],
)
def test_media_message_has_the_fields_of_its_type(
    kind: payloads.MediaKind, wire_type: str, fields: set[str]
) -> None:
    message = payloads.media_message(kind, "1234", sha256_b64=SHA_B64, mime_type="image/webp")

    assert set(message) == {"from", "id", "timestamp", "type", wire_type}
    assert message["type"] == wire_type
    assert message["from"] == payloads.DEFAULT_SENDER
    assert message["id"].startswith("wamid.")
    assert isinstance(message["timestamp"], str)
    assert message["timestamp"].isdigit()
    media = message[wire_type]
    assert set(media) == fields
    assert media["id"] == "1234"
    assert len(base64.b64decode(media["sha256"], validate=True)) == 32


def test_media_message_type_specific_values() -> None:
    def build(kind: payloads.MediaKind, **extra: Any) -> dict[str, Any]:
        return payloads.media_message(kind, "1", sha256_b64=SHA_B64, mime_type="x/y", **extra)

    assert build("voice")["audio"]["voice"] is True
    assert build("audio")["audio"]["voice"] is False
    assert build("sticker")["sticker"]["animated"] is False
    assert build("document", filename="a.pdf", caption="c")["document"]["filename"] == "a.pdf"
    assert build("image", caption="look")["image"]["caption"] == "look"
    assert build("video", wamid="wamid.X", timestamp=1700000000)["id"] == "wamid.X"
    assert build("video", timestamp=1700000000)["timestamp"] == "1700000000"
    assert build("image", url="https://lookaside.fbsbx.com/x")["image"]["url"] == (
        "https://lookaside.fbsbx.com/x"
    )
    with pytest.raises(ValueError, match="caption"):
        build("audio", caption="no")
    with pytest.raises(ValueError, match="filename"):
        build("image", filename="no.jpg")


def test_wamids_are_unique() -> None:
    assert len({payloads.new_wamid() for _ in range(100)}) == 100


def test_too_big_message_carries_131052() -> None:
    message = payloads.too_big_message(sender="447700900123", wamid="wamid.BIG")

    assert message["type"] == "unsupported"
    assert message["from"] == "447700900123"
    assert message["id"] == "wamid.BIG"
    assert message["errors"] == [
        {
            "code": 131052,
            "title": "Media file size too big",
            "message": "Media file size too big",
            "error_data": {
                "details": "Media file size too big. Max file size we currently support: "
                "100MB. Please communicate with your customer to send a file of smaller size."
            },
        }
    ]


def test_encode_is_compact_json() -> None:
    payload = payloads.envelope([payloads.text_message("héllo")])

    body = payloads.encode(payload)

    assert b'": ' not in body
    assert b', "' not in body
    assert json.loads(body) == payload
