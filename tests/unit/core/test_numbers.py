"""Numbers from providers are ASCII digits only, wherever they are read (property tests)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from wa_media.core.classify import parse_retry_after
from wa_media.core.errors import ArchiveError
from wa_media.core.numbers import MAX_DIGITS, ascii_int
from wa_media.providers.cloud import classify_graph_error
from wa_media.providers.graphflow import MediaInfo
from wa_media.providers.onprem import _content_length, classify_onprem_error
from webhook.payload import parse_cloud_payload

ASCII_NUMBER = re.compile(r"[0-9]{1,18}")
# Digits of other scripts (Arabic-Indic, Devanagari, fullwidth...), superscripts, fractions,
# Roman numerals, every kind of space, and the signs and separators `int()` also takes.
NUMBER_LIKE = st.text(
    st.characters(categories=("Nd", "No", "Nl", "Zs")) | st.sampled_from("0123456789+-_.\t\n"),
    max_size=24,
)
TEXTS = st.one_of(
    st.text(),
    NUMBER_LIKE,
    st.from_regex(r"[ \t]*[0-9]{1,24}[ \t]*", fullmatch=True),
    # Past 4300 digits `int()` raises instead of converting.
    st.text("0123456789", min_size=4301, max_size=4400),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
SUPERSCRIPT_TWO = "\u00b2"  # `isdigit()` says yes, `int()` raises


def arabic(digits: str) -> str:
    """The same number in Arabic-Indic digits, which `int()` reads as the ASCII ones."""
    return digits.translate(str.maketrans("0123456789", "".join(map(chr, range(0x660, 0x66A)))))


# Numbers to `isdigit()`, `int()`, `float()` or a reader; none as a provider writes a number.
ODD = [
    SUPERSCRIPT_TWO,
    arabic("3"),
    arabic("131052"),
    "\uff13",  # fullwidth three
    "+5",
    "-5",
    "1_000",
    "12.0",
    " 7\u00a0",  # a no-break space after
    "\u216b",  # Roman numeral twelve
    "\u00bd",  # one half
    "0x10",
]
PROPERTY = settings(max_examples=300, deadline=None)


def expected(text: str) -> int | None:
    """The specification: ASCII digits, at most 18, with HTTP's optional spaces around."""
    digits = text.strip(" \t")
    return int(digits) if ASCII_NUMBER.fullmatch(digits) else None


@PROPERTY
@given(TEXTS)
def test_only_ascii_digits_make_a_number(text: str) -> None:
    assert ascii_int(text) == expected(text)


@pytest.mark.parametrize("text", ODD)
def test_digits_of_other_scripts_and_int_spellings_are_refused(text: str) -> None:
    assert ascii_int(text) is None


def test_numbers_as_providers_write_them() -> None:
    assert ascii_int("131052") == 131052
    assert ascii_int(" 30\t") == 30
    assert ascii_int("0") == 0
    assert ascii_int("9" * MAX_DIGITS) == 10**MAX_DIGITS - 1
    assert ascii_int("1" + "0" * MAX_DIGITS) is None


@PROPERTY
@given(JSON)
def test_any_json_value_gives_a_bounded_count_or_none(value: Any) -> None:
    number = ascii_int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**MAX_DIGITS:
        assert number == value
    elif isinstance(value, str):
        assert number == expected(value)
    else:
        assert number is None


@PROPERTY
@given(TEXTS)
@example("1 Jan 99999999999999999999 00:00")
@example("Fri, 31 Dec 9999 23:59:59 +9999")
@example("Mon, 01 Jan 0001 00:00:00 -0000")
def test_retry_after_never_raises(text: str) -> None:
    seconds = parse_retry_after(text, now=1_800_000_000.0)
    number = expected(text)
    if number is not None:
        assert seconds == float(number)
    else:
        assert seconds is None or seconds >= 0


@pytest.mark.parametrize("text", ODD)
def test_retry_after_in_other_digits_is_ignored(text: str) -> None:
    assert parse_retry_after(text, now=0) is None


@PROPERTY
@given(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(UTC)))
def test_retry_after_as_an_http_date(when: datetime) -> None:
    now = 1_800_000_000.0
    seconds = parse_retry_after(format_datetime(when.replace(microsecond=0), usegmt=True), now=now)
    assert seconds == max(0.0, when.replace(microsecond=0).timestamp() - now)


@PROPERTY
@given(JSON)
@example(SUPERSCRIPT_TWO)
@example(arabic("131052"))
def test_an_error_code_is_read_from_ascii_digits_only(code: Any) -> None:
    graph = classify_graph_error(400, {"error": {"code": code, "error_subcode": code}})
    onprem = classify_onprem_error(400, {"errors": [{"code": code}]})
    for error in (graph, onprem):
        assert isinstance(error, ArchiveError)
        assert error.code == ascii_int(code)
    if isinstance(code, str):
        assert graph.code == expected(code)


def test_a_throttling_code_in_other_digits_is_no_throttling_code() -> None:
    assert classify_graph_error(400, {"error": {"code": "130429"}}).code == 130429
    assert classify_graph_error(400, {"error": {"code": arabic("130429")}}).code is None


@PROPERTY
@given(JSON)
@example(SUPERSCRIPT_TWO)
@example(arabic("300"))
def test_a_look_ups_file_size_is_a_count_or_the_look_up_is_refused(size: Any) -> None:
    body = {"url": "https://x", "mime_type": "image/jpeg", "sha256": "0" * 64, "id": "1"}
    try:
        info = MediaInfo.model_validate({**body, "file_size": size})
    except ValidationError:
        assert not isinstance(size, str) or expected(size) is None
    else:
        assert isinstance(info.file_size, int)
        if isinstance(size, str):
            assert info.file_size == expected(size)


@PROPERTY
@given(TEXTS)
@example(SUPERSCRIPT_TWO)
def test_a_content_length_is_ascii_digits_or_unknown(text: str) -> None:
    response = requests.Response()
    response.headers["Content-Length"] = text
    assert _content_length(response) == expected(text)


def _webhook(timestamp: Any, code: Any) -> dict[str, Any]:
    media = {"id": "111", "mime_type": "image/jpeg", "sha256": "0" * 64}
    message = {"from": "1", "id": "wamid.1", "timestamp": timestamp, "type": "image"}
    failed = {"from": "16505551234", "id": "wamid.2", "timestamp": "1", "type": "unsupported"}
    value = {
        "metadata": {"phone_number_id": "PN1"},
        "messages": [{**message, "image": media}, {**failed, "errors": [{"code": code}]}],
        "errors": [{"code": code}],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "W", "changes": [{"field": "messages", "value": value}]}],
    }


@PROPERTY
@given(JSON, JSON)
@example(SUPERSCRIPT_TWO, SUPERSCRIPT_TWO)
@example(arabic("1700000000"), arabic("131052"))
@example("1700000000", "131052")
def test_a_webhooks_numbers_are_ascii_digits_only(timestamp: Any, code: Any) -> None:
    parsed = parse_cloud_payload(_webhook(timestamp, code), received_at=1_800_000_000)

    stamp = ascii_int(timestamp)
    [job] = parsed.media  # an unreadable timestamp never costs the media
    if stamp is not None and stamp <= 253402300799:
        assert (job.timestamp, job.anomalies) == (stamp, ())
    else:
        assert (job.timestamp, job.anomalies) == (1_800_000_000, ("timestamp_malformed",))
    number = ascii_int(code)
    codes = {n.event: n.code for n in parsed.notices if n.event != "message_skipped"}
    assert codes.get("account_error") == number
    # 131052 on a customer's message owes them a reply instead of a notice.
    assert codes.get("message_error") == (None if number == 131052 else number)
    assert len(parsed.replies) == (number == 131052)
