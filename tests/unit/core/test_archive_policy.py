"""The archive policy's grammar and decision (wa_media/core/archive_policy.py)."""

from __future__ import annotations

import pytest

from wa_media.core.archive_policy import (
    ALL_MEDIA_TYPES,
    DEFAULT_POLICY,
    ArchivePolicy,
    PolicyVerdict,
    byte_size,
    limits_of,
    max_bytes_text,
    media_types,
    mime_pattern,
    mime_patterns,
    parse_max_bytes,
)


def test_the_default_policy_archives_everything() -> None:
    for kind in ALL_MEDIA_TYPES:
        assert DEFAULT_POLICY.by_type(kind, "application/x-anything") is None
        assert DEFAULT_POLICY.by_type(kind, None) is None
        assert DEFAULT_POLICY.by_size(kind, 10**12) is None
    assert DEFAULT_POLICY.too_large_reply


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("1", 1),
        (1, 1),
        ("20000000", 20_000_000),
        ("50MB", 50_000_000),
        ("50 mb", 50_000_000),
        ("100KB", 100_000),
        ("2GB", 2_000_000_000),
        ("16MiB", 16 * 1024**2),
        ("1.5KiB", 1536),
        ("512B", 512),
        ("1GiB", 1024**3),
    ],
)
def test_sizes(raw: str | int, size: int) -> None:
    assert byte_size(raw) == size


@pytest.mark.parametrize("raw", ["", "0", "0MB", "-1", "12XB", "MB", "1e3", "ten", True, 0, -5])
def test_bad_sizes(raw: str | int) -> None:
    with pytest.raises(ValueError, match=r"size|bytes"):
        byte_size(raw)


def test_max_bytes_grammar() -> None:
    assert parse_max_bytes("video=50MB, document=20000000") == (
        ("document", 20_000_000),
        ("video", 50_000_000),
    )
    assert parse_max_bytes("Sticker=100KB,") == (("sticker", 100_000),)
    assert max_bytes_text(parse_max_bytes("video=50MB,audio=1KiB")) == "audio=1024,video=50000000"
    assert limits_of({"image": "5MB", "video": 16_000_000}) == (
        ("image", 5_000_000),
        ("video", 16_000_000),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "type=size pairs"),
        ("video", "expected type=size"),
        ("video=50MB,video=1MB", "given twice"),
        ("gif=1MB", "not a media type"),
        ("voice=1MB", "not a media type"),
        ("video=lots", "not a size"),
        ("video=0", "more than 0"),
    ],
)
def test_bad_max_bytes(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_max_bytes(text)


def test_media_types() -> None:
    assert media_types(["image", " Document "]) == frozenset({"image", "document"})
    with pytest.raises(ValueError, match="not a media type"):
        media_types(["image", "gif"])
    with pytest.raises(ValueError, match="at least one"):
        media_types([])


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ("image/*", "image/*"),
        ("Application/PDF", "application/pdf"),
        ("*", "*/*"),
        ("*/*", "*/*"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
    ],
)
def test_mime_patterns(raw: str, pattern: str | None) -> None:
    assert mime_pattern(raw) == (pattern or raw.lower())


@pytest.mark.parametrize("raw", ["image", "*/pdf", "image/**", "image/ jpeg", "a/b/c", "/", ""])
def test_bad_mime_patterns(raw: str) -> None:
    with pytest.raises(ValueError, match="MIME pattern"):
        mime_patterns([raw, "x"]) if raw else mime_patterns([raw])


def test_a_type_not_archived_is_skipped_before_its_mime_type() -> None:
    policy = ArchivePolicy(media_types=frozenset({"image", "document"}), mime_types=("image/*",))
    assert policy.by_type("video", "image/png") == PolicyVerdict(
        "policy_type", "the account does not archive video media"
    )
    assert policy.by_type("image", "image/jpeg") is None
    assert policy.by_type("document", "application/pdf") == PolicyVerdict(
        "policy_mime", "the account does not archive application/pdf"
    )
    # Unknown yet: the worker decides once the look-up names it.
    assert policy.by_type("document", None) is None


@pytest.mark.parametrize(
    ("mime_type", "allowed"),
    [
        ("image/jpeg", True),
        ("IMAGE/PNG", True),
        ("application/pdf", True),
        ("application/pdf; charset=binary", True),
        ("audio/ogg; codecs=opus", True),
        ("audio/mpeg", False),
        ("application/zip", False),
        ("imagex/jpeg", False),
    ],
)
def test_mime_matching(mime_type: str, allowed: bool) -> None:
    policy = ArchivePolicy(mime_types=("image/*", "application/pdf", "audio/ogg"))
    assert policy.mime_allowed(mime_type) is allowed


def test_size_limits_per_type() -> None:
    policy = ArchivePolicy(max_bytes=parse_max_bytes("video=50MB"))
    assert policy.limit("video") == 50_000_000
    assert policy.limit("image") is None
    assert policy.by_size("video", 50_000_000) is None
    assert policy.by_size("video", None) is None
    assert policy.by_size("image", 10**12) is None
    assert policy.by_size("video", 50_000_001) == PolicyVerdict(
        "policy_size", "video of 50000001 bytes, over the account's 50000000 bytes"
    )


def test_an_account_overrides_what_it_gives() -> None:
    base = ArchivePolicy(mime_types=("image/*",), max_bytes=(("video", 5),))
    account = base.overridden(too_large_reply=False, max_bytes=(("document", 7),))
    assert account == ArchivePolicy(
        mime_types=("image/*",), max_bytes=(("document", 7),), too_large_reply=False
    )
    assert base.overridden() == base
