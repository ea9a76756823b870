import pytest

from wa_media.core.errors import InvalidSignature, MissingSignature
from webhook.signature import sign, verify

BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_known_answer() -> None:
    # From `printf '{"a":1}' | openssl dgst -sha256 -hmac secret`.
    expected = "aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494"
    assert sign(b'{"a":1}', "secret") == "sha256=" + expected


def test_valid_signature_passes() -> None:
    verify(BODY, sign(BODY, "s1"), ["s1"])


def test_any_configured_secret_is_accepted() -> None:
    verify(BODY, sign(BODY, "new"), ["old", "new"])


def test_uppercase_hex_is_accepted() -> None:
    header = sign(BODY, "s1")
    verify(BODY, "sha256=" + header[7:].upper(), ["s1"])


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(MissingSignature):
        verify(BODY, header, ["s1"])


@pytest.mark.parametrize(
    "header",
    [
        "sha1=" + "0" * 40,
        "sha256=",
        "sha256=" + "z" * 64,
        "sha256=" + "0" * 63,
        "SHA256=" + "0" * 64,
        "sha256=" + "é" * 64,
    ],
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, header, ["s1"])


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, sign(BODY, "other"), ["s1", "s2"])


def test_body_changed_by_one_byte() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY + b" ", sign(BODY, "s1"), ["s1"])
