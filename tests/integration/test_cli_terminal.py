"""`wa-media failed`, `skipped` and `status` print what webhooks and providers wrote: escaped,
so that no value can drive the operator's terminal (escape sequences, carriage returns, the
right-to-left override). Records are written in a real Redis, as the service writes them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from redis import Redis

from tests.conftest import redis_db
from wa_media.cli import main
from wa_media.cli.shown import shown
from wa_media.core.jobs import Customer, MediaJob
from wa_media.stores.records import MediaRef, MediaStateStore, SkippedLog

# Clears the screen, sets the window title, hides what follows, writes over the line.
HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b[8m\r\u202e"
ESCAPED = "\\x1b[2J\\x1b]0;owned\\x07\\x1b[8m\\r\\u202e"


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_db(2)


def run(redis_url: str, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    return result.output


def job(media_id: str, **fields: object) -> MediaJob:
    return MediaJob.model_validate(
        {
            "phone_number_id": "1",
            "waba_id": None,
            "wamid": "wamid.1",
            "timestamp": int(time.time()),
            "type": "image",
            "media_id": media_id,
            "mime_type": "image/jpeg",
            "sha256": None,
            **fields,
        }
    )


def clean(output: str) -> None:
    """Nothing a terminal acts on is left but the lines' own ends."""
    assert all(char.isprintable() or char == "\n" for char in output), repr(output)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("wamid.HBgL+/=", "wamid.HBgL+/="),
        ("José 日本", "José 日本"),
        (HOSTILE, ESCAPED),
        ("a\nb\tc\x00", "a\\nb\\tc\\x00"),
        ("\x85\u2028\U000e0001", "\\x85\\u2028\\U000e0001"),
        (None, ""),
        (7, "7"),
    ],
)
def test_shown_escapes_what_a_terminal_would_act_on(value: object, expected: str) -> None:
    assert shown(value) == expected


def test_failed_escapes_the_reason_and_the_customer(redis_url: str) -> None:
    store = MediaStateStore(Redis.from_url(redis_url))
    customer = Customer(user_id="US.1", username=f"eve{HOSTILE}")
    failed = job("m1", customer=customer)
    store.admit(failed)
    store.mark_failed(MediaRef.of(failed), f"refused: {HOSTILE}")

    output = run(redis_url, "failed")

    clean(output)
    [line] = [row for row in output.splitlines() if row.startswith("m1")]
    assert f"refused: {ESCAPED}" in line
    assert f"@eve{ESCAPED}" in line


def test_skipped_escapes_every_field(redis_url: str) -> None:
    entry = {
        "reason": "malformed",
        "detail": f"malformed image message: {HOSTILE}",
        "wamid": f"wamid.{HOSTILE}",
        "phone_number_id": f"1{HOSTILE}",
        "type": f"im{HOSTILE}",
    }
    SkippedLog(Redis.from_url(redis_url)).add([entry])

    output = run(redis_url, "skipped")

    clean(output)
    assert f"wamid.{ESCAPED}" in output
    assert f"malformed image message: {ESCAPED}" in output
    # The JSON form escapes as JSON does, and reads back as written.
    clean(run(redis_url, "skipped", "--json"))


def test_status_escapes_media_ids(redis_url: str) -> None:
    store = MediaStateStore(Redis.from_url(redis_url))
    store.admit(job(f"m{HOSTILE}"))

    output = run(redis_url, "status")

    clean(output)
    assert f"m{ESCAPED}" in output
