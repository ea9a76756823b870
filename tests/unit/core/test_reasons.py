"""The bounded reason labels of metrics and logs."""

import hashlib
import random
import re
from typing import Any

import pytest

from wa_media.core.errors import (
    BrokerUnavailable,
    BusyError,
    Expired,
    ForeignHost,
    IntegrityError,
    InvalidId,
    KeyConflict,
    NoAccount,
    PausedError,
    PermanentError,
    RedisUnavailable,
    RetryableError,
    SizeMismatch,
    StorageError,
    TemporaryError,
    TimedOut,
    TooBig,
    UrlRefused,
    WorkerDied,
)
from wa_media.core.jobs import MediaJob
from wa_media.core.policy import MAX_INTEGRITY_FAILURES, plan_retry
from wa_media.core.provider import Fetched
from wa_media.core.reasons import REASONS, reason_of
from wa_media.providers.cloud import classify_graph_error
from wa_media.providers.d360 import classify_d360_error
from wa_media.providers.onprem import classify_onprem_error
from wa_media.providers.transfer import Tally
from worker.archive import check_download

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (IntegrityError("sha256 differs"), "sha256_mismatch"),
        (SizeMismatch("downloaded 3 bytes, announced 4"), "size_mismatch"),
        (NoAccount("no account serves 1"), "no_account"),
        (PausedError("paused"), "token_rejected"),
        (StorageError("S3 commit failed: SlowDown"), "s3_unavailable"),
        (RedisUnavailable("Redis get failed: ConnectionError"), "redis_unavailable"),
        (BusyError("leased"), "busy"),
        (TimedOut("try ran past its soft time limit"), "timeout"),
        (TemporaryError("media download broke off: ChunkedEncodingError"), "provider_unavailable"),
        (UrlRefused("download URL answered HTTP 404", status=404), "url_refused"),
        (TooBig("media is 9 bytes, over MAX_MEDIA_BYTES=8"), "too_big"),
        (Expired("expired"), "expired"),
        (WorkerDied("the worker died 3 times"), "worker_died"),
        (ForeignHost("not allowed"), "host_not_allowed"),
        (InvalidId("bad id"), "invalid_id"),
        (KeyConflict("the key holds other bytes already"), "key_conflict"),
        (PermanentError("neither the provider nor the webhook announced a sha256"), "other"),
        (RetryableError("unexpected KeyError"), "other"),
        (BrokerUnavailable("publish failed: OperationalError"), "broker_unavailable"),
        # Vendors' errors are translated by their adapters: reached raw, they are unexpected.
        (ConnectionRefusedError(), "other"),
        (ValueError("anything"), "other"),
    ],
)
def test_errors_get_their_reason(error: BaseException, reason: str) -> None:
    assert reason_of(error) == reason


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"error": {"code": 100}}, "not_found"),
        (404, {"error": {"code": 803}}, "not_found"),
        (400, {"error": {"code": 131009}}, "refused"),
        (401, {"error": {"code": 190}}, "token_rejected"),
        (400, {"error": {"code": 190}}, "token_rejected"),
        (403, {"error": {"code": 4}}, "rate_limited"),
        (429, None, "rate_limited"),
        (500, {"error": {"code": 1}}, "provider_unavailable"),
        (400, {"error": {"code": 131047}}, "reengagement"),
    ],
)
def test_graph_answers_get_their_reason(status: int, body: Any, reason: str) -> None:
    assert reason_of(classify_graph_error(status, body)) == reason


def test_other_dialects_get_their_reason() -> None:
    assert reason_of(classify_d360_error(403, {"error": "blocked"})) == "token_rejected"
    assert reason_of(classify_d360_error(404, {"error": "no such media"})) == "not_found"
    assert reason_of(classify_onprem_error(400, {"errors": [{"code": 470}]})) == "reengagement"
    assert reason_of(classify_onprem_error(503, None)) == "provider_unavailable"


def test_reasons_are_few_short_words() -> None:
    assert len(REASONS) == len(set(REASONS)) <= 30
    for reason in REASONS:
        assert re.fullmatch(r"[a-z0-9_]{2,24}", reason), reason


def test_no_text_or_id_becomes_a_reason() -> None:
    # Whatever the error says, its label is one of the fixed few.
    for text in ("media 123456 not found", "wamid.HBgL...", "x" * 500):
        for kind in (PermanentError, TemporaryError, RetryableError, StorageError):
            assert reason_of(kind(text, code=100, status=404)) in REASONS


def _job(sha256: str | None) -> MediaJob:
    return MediaJob(
        phone_number_id="1",
        waba_id=None,
        wamid="wamid.1",
        sender="2",
        timestamp=1,
        type="image",
        media_id="m1",
        mime_type="image/jpeg",
        sha256=sha256,
    )


def test_download_checks_tell_size_from_digest() -> None:
    digest = hashlib.sha256(b"abc").hexdigest()
    announced = Fetched(digest, 4, {}, iter(()))
    with pytest.raises(SizeMismatch) as size:
        check_download(digest, 3, announced, _job(None))
    assert reason_of(size.value) == "size_mismatch"
    with pytest.raises(IntegrityError) as digest_error:
        check_download("0" * 64, 4, announced, _job(None))
    assert reason_of(digest_error.value) == "sha256_mismatch"
    tally = Tally(limit=2)
    with pytest.raises(TooBig) as too_big:
        list(tally.through(iter([b"abc"])))
    assert reason_of(too_big.value) == "too_big"


def test_give_ups_say_why() -> None:
    rng = random.Random(0)
    expired = plan_retry(
        TemporaryError("x"),
        attempts=1,
        integrity_failures=0,
        now=NOW,
        deadline=NOW - 1,
        cap=1800,
        rng=rng,
    )
    assert (expired.countdown, expired.give_up_reason) == (None, "expired")
    for error, reason in (
        (IntegrityError("sha256 differs"), "sha256_mismatch"),
        (SizeMismatch("3 bytes, announced 4"), "size_mismatch"),
    ):
        exhausted = plan_retry(
            error,
            attempts=5,
            integrity_failures=MAX_INTEGRITY_FAILURES - 1,
            now=NOW,
            deadline=NOW + 3 * 24 * 3600,
            cap=1800,
            rng=rng,
        )
        assert (exhausted.countdown, exhausted.give_up_reason) == (None, reason)
    retried = plan_retry(
        TemporaryError("x"),
        attempts=1,
        integrity_failures=0,
        now=NOW,
        deadline=NOW + 3 * 24 * 3600,
        cap=1800,
        rng=rng,
    )
    assert retried.countdown is not None
    assert retried.give_up_reason is None
