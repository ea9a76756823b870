import base64
import hashlib
import random

import pytest

from wa_media.core.allowlist import is_allowed_media_url
from wa_media.core.backoff import next_countdown
from wa_media.core.classify import parse_retry_after
from wa_media.core.digests import normalise_sha256
from wa_media.core.errors import (
    CredentialsError,
    PermanentError,
    ReengagementError,
    RetryableError,
    TemporaryError,
    ThrottledError,
)
from wa_media.providers.cloud import classify_graph_error
from wa_media.providers.d360 import classify_d360_error
from wa_media.providers.onprem import classify_onprem_error

DIGEST = hashlib.sha256(b"x").digest()


@pytest.mark.parametrize(
    "given",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        base64.b64encode(DIGEST).decode(),
        base64.urlsafe_b64encode(DIGEST).decode(),
        f"  {DIGEST.hex()} ",
    ],
)
def test_digest_forms(given: str) -> None:
    assert normalise_sha256(given) == DIGEST.hex()


@pytest.mark.parametrize("bad", ["", "abc", "g" * 64, base64.b64encode(b"short").decode()])
def test_digest_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        normalise_sha256(bad)


def graph_error(code: int) -> dict[str, object]:
    return {"error": {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "x"}}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, None, ThrottledError),
        (400, graph_error(130429), ThrottledError),
        (400, graph_error(80007), ThrottledError),
        (403, graph_error(4), ThrottledError),
        (400, graph_error(131056), ThrottledError),
        (401, None, CredentialsError),
        (400, graph_error(190), CredentialsError),
        (500, None, TemporaryError),
        (503, {"error": "busy"}, TemporaryError),
        (400, graph_error(131000), TemporaryError),
        (400, graph_error(2), TemporaryError),
        (408, None, TemporaryError),
        (400, graph_error(100), PermanentError),
        (404, None, PermanentError),
        (400, graph_error(131047), ReengagementError),
        (400, {"error": {"code": "131048"}}, ThrottledError),
        (400, "not json", PermanentError),
    ],
)
def test_classification(status: int, body: object, kind: type[Exception]) -> None:
    error = classify_graph_error(status, body)
    assert type(error) is kind


def test_throttling_keeps_retry_after() -> None:
    error = classify_graph_error(429, None, retry_after=7.0)
    assert isinstance(error, RetryableError)
    assert error.retry_after == 7.0


def test_retry_after_parsing() -> None:
    assert parse_retry_after("12", now=0) == 12.0
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [next_countdown(n, base=2, cap=100, rng=rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(100, 2 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 100


def test_backoff_is_jittered() -> None:
    rng = random.Random(2)
    assert len({next_countdown(5, base=2, cap=1000, rng=rng) for _ in range(20)}) > 1


def test_retry_after_is_a_floor_but_still_capped() -> None:
    assert next_countdown(0, base=1, cap=60, retry_after=30) >= 30
    assert next_countdown(0, base=1, cap=60, retry_after=10_000) == 60


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", True),
        ("https://LOOKASIDE.fbsbx.com:443/x", True),
        ("https://lookaside.fbsbx.com:8443/x", False),
        ("https://evil.example/x", False),
        ("https://lookaside.fbsbx.com.evil.example/x", False),
        ("https://user:pw@lookaside.fbsbx.com/x", False),
        ("ftp://lookaside.fbsbx.com/x", False),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost:8080/x", False),
        ("http://127.0.0.1:8081/x", False),
        ("http://[::1]:9000/x", True),
        ("not a url", False),
        ("http://[::1/x", False),
    ],
)
def test_allowlist(url: str, allowed: bool) -> None:
    hosts = ("lookaside.fbsbx.com", "127.0.0.1:8080", "[::1]:9000")
    assert is_allowed_media_url(url, hosts) is allowed


def onprem(code: object) -> dict[str, object]:
    return {"errors": [{"code": code, "title": "t", "details": "d"}]}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"error": "Invalid api_key"}, CredentialsError),
        (403, {"error": "Forbidden"}, CredentialsError),
        (429, {"error": "blocked"}, ThrottledError),
        (500, {"error": "Internal Server Error"}, TemporaryError),
        (503, None, TemporaryError),
        (408, None, TemporaryError),
        (400, {"error": "(#131047) Re-engagement message"}, PermanentError),
        (404, {"error": "Media 1 not found"}, PermanentError),
        (400, "not json", PermanentError),
        # Meta's own error passed on: its code decides.
        (400, {"error": {"code": 131047, "message": "m"}}, ReengagementError),
        (400, {"error": {"code": 4, "message": "m"}}, ThrottledError),
    ],
)
def test_d360(status: int, body: object, kind: type[Exception]) -> None:
    assert type(classify_d360_error(status, body)) is kind


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, onprem(1005), CredentialsError),
        (400, onprem(1005), CredentialsError),
        (401, None, CredentialsError),
        (429, onprem(1015), ThrottledError),
        (400, onprem("1015"), ThrottledError),
        (503, onprem(1011), TemporaryError),
        (400, onprem(1011), TemporaryError),
        (400, onprem(1014), TemporaryError),
        (500, None, TemporaryError),
        (400, onprem(470), ReengagementError),
        (404, onprem(1006), PermanentError),
        (400, onprem(1009), PermanentError),
        (400, onprem(True), PermanentError),
        (400, {"errors": []}, PermanentError),
        (403, {"error": "x"}, PermanentError),
    ],
)
def test_onprem(status: int, body: object, kind: type[Exception]) -> None:
    assert type(classify_onprem_error(status, body)) is kind


def test_the_label_names_status_and_code_and_keeps_the_wait() -> None:
    error = classify_onprem_error(429, onprem(1015), retry_after=9.0, what="send message")
    assert error.reason == "send message answered HTTP 429, code 1015: throttled"
    assert error.code == 1015
    assert isinstance(error, RetryableError)
    assert error.retry_after == 9.0
    assert classify_d360_error(429, {"error": "blocked"}, retry_after=60.0).code is None
