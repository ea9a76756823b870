"""Property-based tests of `wa_media.core.layout` (docs/s3-archive.md) with hostile inputs."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from wa_media.core.errors import InvalidId
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import (
    EXTENSIONS,
    build_key,
    content_disposition,
    object_metadata,
    sidecar,
)

MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID_CHARS = string.ascii_letters + string.digits + "_.-"
# The sidecar of docs/s3-archive.md, field for field and in order.
SIDECAR_FIELDS = [
    "schema",
    "media_id",
    "phone_number_id",
    "waba_id",
    "wamid",
    "from",
    "timestamp",
    "type",
    "caption",
    "filename",
    "voice",
    "animated",
    "mime_type",
    "sha256",
    "size",
    "bucket",
    "key",
    "archived_at",
    "lookup",
]
# Schema 2 keeps schema 1's fields first, in the same order, and adds these.
SIDECAR_2_FIELDS = [
    *SIDECAR_FIELDS,
    "direction",
    "source",
    "customer",
    "url_source",
    "original_message_id",
    "received_at",
    "anomalies",
]
EXTENSIONS_OR_BIN = {*EXTENSIONS.values(), ".bin"}
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
# attachment, then a quoted ASCII filename with no quote, backslash, slash or control
# character, then an RFC 5987 UTF-8 name holding only unreserved characters and %XX escapes.
DISPOSITION = re.compile(
    r'attachment(; filename="[^"\\/\x00-\x1f\x7f]*"'
    r"(; filename\*=UTF-8''(%[0-9A-F]{2}|[A-Za-z0-9._~-])*)?)?"
)

HOSTILE = settings(
    max_examples=500,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Surrogates included: JSON can escape them, so a webhook can carry them into a job.
ANY_CHAR = st.characters(exclude_categories=())
TRICKY = [
    "",
    ".",
    "..",
    "...",
    "../x",
    "a/../b",
    "../../../../etc/passwd",
    "a/b",
    "a\\b",
    "\x00",
    "a\x00",
    "a\n",
    "a\r\nX-Injected: 1",
    '"; filename="evil.exe',
    "\u202etxt.exe",
    "\ufeff",
    "\ud800",
    "\u0661\u0662",
    "\uff41",
    "\u212a",
    "\u0130",
    "\ufdfa",
    "a" * 128,
    "a" * 129,
    "CON",
    " ",
    "~",
]


def huge(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings of 1,000 to 10,000 characters, cheap to draw."""
    return st.builds(
        lambda unit, n: (unit * n)[:10_000],
        st.text(alphabet, min_size=1, max_size=8),
        st.integers(1_000, 10_000),
    )


def texts(alphabet: st.SearchStrategy[str] = ANY_CHAR) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet, max_size=40), st.text(alphabet, max_size=300), huge(alphabet)
    )


any_text = st.one_of(texts(), st.sampled_from(TRICKY))
ids = st.one_of(
    st.text(ID_CHARS, min_size=1, max_size=130),
    st.text(ID_CHARS + "/\\\x00 \n", max_size=20),
    any_text,
)
timestamps = st.integers(0, MAX_TIMESTAMP)


@st.composite
def mime_types(draw: st.DrawFn) -> tuple[str, str | None]:
    """A MIME type, and the extension docs/s3-archive.md's table owes it when that is certain."""
    if draw(st.booleans()):
        return draw(any_text), None
    base = draw(st.sampled_from(sorted(EXTENSIONS)))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in base)
    space = st.sampled_from(["", " ", "\t", "  "])
    params = draw(st.sampled_from(["", ";", "; codecs=opus", ";charset=utf-8", "; a=b; c=d"]))
    return f"{draw(space)}{cased}{draw(space)}{params}", EXTENSIONS[base]


def valid_id(value: str) -> bool:
    """docs/s3-archive.md: an id is 1 to 128 of [A-Za-z0-9_.-], not dots alone."""
    return 0 < len(value) <= 128 and all(c in ID_CHARS for c in value) and value.strip(".") != ""


def assert_clean_path(path: str) -> None:
    """No way out of the prefix or around a consumer's path handling."""
    assert path.isascii(), path
    assert "\\" not in path
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in path), path
    for segment in path.split("/"):
        assert segment not in ("", ".", ".."), path


def check_key(
    key: str, prefix: str, pnid: str, timestamp: int, media_id: str, ext: str | None
) -> str:
    """The key's shape after the prefix; return that part."""
    trimmed = prefix.strip("/")
    if trimmed:
        assert key.startswith(trimmed + "/")
        rest = key[len(trimmed) + 1 :]
    else:
        assert not key.startswith("/")
        rest = key
    assert_clean_path(rest)
    segments = rest.split("/")
    assert len(segments) == 5, rest
    day = EPOCH + timedelta(seconds=timestamp)
    assert segments[:4] == [pnid, f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"]
    assert segments[4].startswith(media_id)
    suffix = segments[4][len(media_id) :]
    assert suffix in EXTENSIONS_OR_BIN
    if ext is not None:
        assert suffix == ext
    return rest


@given(
    prefix=st.one_of(any_text, st.text("/a.", max_size=6)),
    pnid=ids,
    timestamp=timestamps,
    media_id=ids,
    mime=mime_types(),
)
@example(prefix="/", pnid="..", timestamp=0, media_id="1", mime=("image/jpeg", ".jpg"))
@example(prefix="", pnid="1", timestamp=0, media_id="../1", mime=("image/jpeg", ".jpg"))
@example(prefix="", pnid="1", timestamp=MAX_TIMESTAMP, media_id="...", mime=("x", None))
@example(prefix="p", pnid="1", timestamp=0, media_id="a" * 128, mime=("", None))
@example(prefix="//a//", pnid="1", timestamp=951782400, media_id="x", mime=(" AUDIO/OGG;", ".ogg"))
@HOSTILE
def test_build_key_refuses_bad_ids_and_stays_inside_the_prefix(
    prefix: str, pnid: str, timestamp: int, media_id: str, mime: tuple[str, str | None]
) -> None:
    """Any id, MIME type and prefix: InvalidId, or prefix/pnid/YYYY/MM/DD/media_id.ext."""
    try:
        key = build_key(prefix, pnid, timestamp, media_id, mime[0])
    except InvalidId:
        assert not (valid_id(pnid) and valid_id(media_id))
        return
    assert valid_id(pnid)
    assert valid_id(media_id)
    check_key(key, prefix, pnid, timestamp, media_id, mime[1])


# Prefixes an operator would write: id-like segments, perhaps between stray slashes.
clean_prefixes = st.builds(
    lambda lead, segments, trail: lead + "/".join(segments) + trail,
    st.sampled_from(["", "/", "//"]),
    st.lists(st.text(ID_CHARS, min_size=1, max_size=12).filter(valid_id), max_size=3),
    st.sampled_from(["", "/", "//"]),
)


@given(
    prefix=clean_prefixes,
    pnid=ids,
    timestamp=timestamps,
    media_id=ids,
    mime=mime_types(),
)
@HOSTILE
def test_build_key_under_a_clean_prefix_is_a_clean_path(
    prefix: str, pnid: str, timestamp: int, media_id: str, mime: tuple[str, str | None]
) -> None:
    """Under a sensible S3_PREFIX the whole key is ASCII, with no empty, `.` or `..` segment."""
    try:
        key = build_key(prefix, pnid, timestamp, media_id, mime[0])
    except InvalidId:
        assert not (valid_id(pnid) and valid_id(media_id))
        return
    assert_clean_path(key)
    check_key(key, prefix, pnid, timestamp, media_id, mime[1])
    assert len(key.split("/")) == 5 + len([s for s in prefix.split("/") if s])


@given(filename=st.one_of(st.none(), any_text))
@example(filename="../../x\\y/report.pdf")
@example(filename='a\r\nX-Injected: 1"; filename="evil.exe')
@example(filename="\ud800")  # JSON's `\ud800` escapes reach a job as lone surrogates
@example(filename="report\udcff.pdf")
@HOSTILE
def test_content_disposition_is_a_safe_header(filename: str | None) -> None:
    """Any filename: an ASCII `attachment` header, no CR/LF/NUL, nothing but the file's name."""
    header = content_disposition(filename)
    assert header.isascii(), header
    assert not {"\r", "\n", "\x00"} & set(header)
    assert header.startswith("attachment")
    assert DISPOSITION.fullmatch(header), header


@given(filename=any_text)
@example(filename="\u4e2d" * 200)
@example(filename="\U0001f600" * 200)
@HOSTILE
def test_content_disposition_is_bounded(filename: str) -> None:
    """Any filename: the header stays under 2,000 characters."""
    assert len(content_disposition(filename)) < 2000


hex_digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
media_jobs = st.builds(
    MediaJob,
    phone_number_id=ids,
    waba_id=st.none() | any_text,
    wamid=any_text,
    sender=any_text,
    timestamp=timestamps,
    type=st.sampled_from(["image", "video", "audio", "document", "sticker"]),
    media_id=ids,
    mime_type=any_text,
    sha256=st.none() | hex_digests,
    caption=st.none() | any_text,
    filename=st.none() | any_text,
    voice=st.none() | st.booleans(),
    animated=st.none() | st.booleans(),
)


@given(job=media_jobs, digest=hex_digests)
@HOSTILE
def test_object_metadata_is_printable_ascii_within_256(job: MediaJob, digest: str) -> None:
    """S3 user metadata travels as HTTP headers: every value printable ASCII, 256 at most."""
    metadata = object_metadata(job, digest)
    assert {"sha256", "wamid", "media-type", "direction"} <= set(metadata)
    assert ("from" in metadata) == bool(job.sender)
    assert set(metadata) <= {"sha256", "wamid", "from", "media-type", "direction", "user-id"}
    assert metadata["sha256"] == digest
    assert metadata["media-type"] == job.type
    for value in metadata.values():
        assert all(" " <= c <= "~" for c in value), value
        assert len(value) <= 256


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(ANY_CHAR, max_size=30),
)
lookups = st.dictionaries(
    st.one_of(
        st.sampled_from(["url", "id", "mime_type", "sha256", "file_size", "messaging_product"]),
        st.text(ANY_CHAR, max_size=10),
    ),
    st.recursive(
        json_scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=6,
)
archive_times = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
)


@given(
    job=media_jobs,
    bucket=st.text(max_size=63),
    key=any_text,
    digest=hex_digests,
    size=st.integers(0, 2**63),
    lookup=lookups,
    archived_at=archive_times,
)
@HOSTILE
def test_sidecar_is_interfaces_document(
    job: MediaJob,
    bucket: str,
    key: str,
    digest: str,
    size: int,
    lookup: dict[str, object],
    archived_at: datetime,
) -> None:
    """Any valid job: docs/s3-archive.md's sidecar fields in order, a JSON round trip, no look-up
    url."""
    document = sidecar(
        job,
        bucket=bucket,
        key=key,
        sha256_hex=digest,
        size=size,
        lookup=lookup,
        archived_at=archived_at,
    )
    assert list(document) == SIDECAR_2_FIELDS
    assert json.loads(json.dumps(document)) == document
    assert "url" not in document["lookup"]
    assert document["lookup"] == {name: v for name, v in lookup.items() if name != "url"}
    assert document["schema"] == 2
    # The sidecar's sha256 is the digest of the archived bytes, not the one the webhook announced.
    expected = job.model_dump(include=set(SIDECAR_FIELDS) | {"sender"}, exclude={"sha256"})
    expected["from"] = expected.pop("sender")
    assert {name: document[name] for name in expected} == expected
    assert (document["sha256"], document["size"], document["bucket"], document["key"]) == (
        digest,
        size,
        bucket,
        key,
    )
    assert RFC3339_UTC.fullmatch(document["archived_at"]), document["archived_at"]
    assert datetime.fromisoformat(document["archived_at"]) == archived_at


def plain_job(**changes: object) -> MediaJob:
    base = {
        "phone_number_id": "106540352242922",
        "waba_id": None,
        "wamid": "wamid.1",
        "sender": "16505551234",
        "timestamp": 0,
        "type": "image",
        "media_id": "1",
        "mime_type": "image/jpeg",
        "sha256": None,
    }
    return MediaJob.model_validate({**base, **changes})


@given(job=media_jobs)
@example(job=plain_job(caption="\ud800"))
@HOSTILE
def test_sidecar_is_utf8_json(job: MediaJob) -> None:
    """docs/s3-archive.md: the sidecar is UTF-8 JSON, as the store writes it (raw, not
    escaped)."""
    document = sidecar(
        job,
        bucket="b",
        key="k",
        sha256_hex="0" * 64,
        size=0,
        lookup={},
        archived_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(text.encode("utf-8")) == document
