"""The upload check by type and size, and the MIME type of a file name (pure).

The simulator's table is written apart from the worker's; here the two are held to agree.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphsim import mediatypes as sim
from wa_media.core import mediatypes
from wa_media.core.layout import base_mime_type
from wa_media.core.mediatypes import (
    LIMITS,
    OGG_OPUS,
    UPLOAD_TYPES,
    guess_mime_type,
    resumable_problem,
    upload_problem,
)

KB, MB = 1024, 1024 * 1024


def webp(animated: bool) -> bytes:
    flags = 0x02 if animated else 0x00
    return b"RIFF" + struct.pack("<I", 100) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes([flags])


@pytest.mark.parametrize(
    ("mime_type", "size"),
    [
        ("audio/aac", 16 * MB),
        ("audio/amr", 1),
        ("audio/mpeg", 1),
        ("audio/mp4", 1),
        ("audio/ogg; codecs=opus", 16 * MB),
        ('audio/ogg; codecs="OPUS"', 1),
        ("application/pdf", 100 * MB),
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation", 1),
        ("text/plain", 1),
        ("image/jpeg", 5 * MB),
        ("IMAGE/PNG", 1),
        ("video/mp4", 16 * MB),
        ("video/3gpp", 1),
    ],
)
def test_accepted(mime_type: str, size: int) -> None:
    assert upload_problem(mime_type, size, b"") is None


@pytest.mark.parametrize(
    ("mime_type", "size", "reason"),
    [
        ("image/gif", 1, "media type image/gif is not supported for upload"),
        ("", 1, "media type (none) is not supported"),
        ("audio/ogg; codecs=vorbis", 1, "Opus codec only, not vorbis"),
        ("audio/ogg", 1, "Opus codec only: give the type as audio/ogg; codecs=opus"),
        ("audio/ogg; charset=x", 1, "Opus codec only: give the type as"),
        ("audio/aac", 16 * MB + 1, f"file of {16 * MB + 1} bytes is over the {16 * MB}-byte"),
        ("application/pdf", 100 * MB + 1, "limit for application/pdf"),
        ("image/png", 5 * MB + 1, "limit for image/png"),
        ("video/3gpp", 16 * MB + 1, "limit for video/3gpp"),
    ],
)
def test_refused(mime_type: str, size: int, reason: str) -> None:
    problem = upload_problem(mime_type, size, b"")
    assert problem is not None
    assert reason in problem


def test_stickers_are_limited_by_whether_they_move() -> None:
    assert upload_problem("image/webp", 100 * KB, webp(False)) is None
    static = upload_problem("image/webp", 100 * KB + 1, webp(False))
    assert static is not None
    assert "static sticker" in static
    assert upload_problem("image/webp", 500 * KB, webp(True)) is None
    assert upload_problem("image/webp", 500 * KB + 1, webp(True)) is not None
    # Too short a head to say: the stricter limit.
    assert upload_problem("image/webp", 100 * KB + 1, b"RIFF") is not None


def test_resumable_uploads_take_fewer_types() -> None:
    assert resumable_problem("video/mp4", 1, b"") is None
    assert resumable_problem("image/jpg", 1, b"") is None
    refused = resumable_problem("audio/aac", 1, b"")
    assert refused is not None
    assert "resumable" in refused
    assert resumable_problem("image/jpeg", 5 * MB + 1, b"") is not None


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("photo.JPG", "image/jpeg"),
        ("photo.jpeg", "image/jpeg"),
        ("note.opus", OGG_OPUS),
        ("note.ogg", "audio/ogg"),
        ("song.mp3", "audio/mpeg"),
        ("/tmp/report.final.pdf", "application/pdf"),
        ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("clip.3gp", "video/3gpp"),
        ("sticker.webp", "image/webp"),
        ("archive.zip", None),
        ("README", None),
    ],
)
def test_guess_mime_type(name: str, mime_type: str | None) -> None:
    assert guess_mime_type(name) == mime_type


def test_every_guess_is_an_upload_type() -> None:
    extensions = "aac amr mp3 m4a ogg opus txt pdf doc docx xls xlsx ppt pptx jpg png webp mp4 3gp"
    guessed = {guess_mime_type(f"f.{ext}") or "" for ext in extensions.split()}
    assert {base_mime_type(mime) for mime in guessed} == set(UPLOAD_TYPES)


def test_the_worker_and_the_simulator_tables_agree() -> None:
    worker = {mime: LIMITS[category] for mime, category in UPLOAD_TYPES.items()}
    disagreements = [
        f"{mime}: worker {worker.get(mime)}, simulator {sim.SUPPORTED.get(mime)}"
        for mime in sorted(set(worker) | set(sim.SUPPORTED))
        if worker.get(mime) != sim.SUPPORTED.get(mime)
    ]
    for name in ("STATIC_STICKER_LIMIT", "MAX_UPLOAD_SIZE", "RESUMABLE_TYPES"):
        if getattr(mediatypes, name) != getattr(sim, name):
            disagreements.append(f"{name}: worker {getattr(mediatypes, name)}, simulator differs")
    for mime, codec in sim.REQUIRED_CODECS.items():
        if upload_problem(mime, 1, b"") is None:
            disagreements.append(f"{mime}: the worker takes it without codecs={codec}")
        if upload_problem(f"{mime}; codecs={codec}", 1, b"") is not None:
            disagreements.append(f"{mime}: the worker refuses it with codecs={codec}")

    assert disagreements == []


def _parameter(name: str, value: str, quoted: bool, space: str) -> str:
    return f';{space}{name}="{value}"' if quoted else f";{space}{name}={value}"


TOKENS = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.+", min_size=1)
PARAMETERS = st.lists(
    st.builds(
        _parameter,
        st.sampled_from(["codecs", "CODECS", "charset", "rate"]),
        st.sampled_from(["opus", "OPUS", "Opus", "vorbis", "flac", "mp4a.40.2"]) | TOKENS,
        st.booleans(),
        st.sampled_from(["", " ", "\t"]),
    ),
    max_size=2,
    unique_by=lambda p: p.lstrip("; \t").split("=")[0].lower(),
)
TYPES = st.sampled_from(sorted({*UPLOAD_TYPES, *sim.SUPPORTED})) | st.sampled_from(
    ["image/gif", "audio/opus", "audio/wav", "video/webm", "application/zip", "image/jpg"]
)


def _limits(mime: str) -> list[int]:
    limit = sim.SUPPORTED.get(mime, MB)
    return [0, 1, sim.STATIC_STICKER_LIMIT, limit - 1, limit, limit + 1, sim.MAX_UPLOAD_SIZE + 1]


@settings(max_examples=500, deadline=None)
@given(
    TYPES.flatmap(lambda mime: st.tuples(st.just(mime), st.sampled_from(_limits(mime)))),
    st.sampled_from([str.lower, str.upper, str.title]),
    PARAMETERS,
    st.sampled_from([b"", b"RIFF", webp(False), webp(True)]),
)
def test_the_worker_refuses_exactly_what_the_simulator_refuses(
    mime_and_size: tuple[str, int], case: Callable[[str], str], parameters: list[str], head: bytes
) -> None:
    mime, size = mime_and_size
    content_type = case(mime) + "".join(parameters)

    worker = upload_problem(content_type, size, head)
    simulator = sim.upload_problem(content_type, size, head)

    assert (worker is None) == (simulator is None), (content_type, size, worker, simulator)
