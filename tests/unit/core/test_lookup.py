"""The read API's decisions (wa_media/core/lookup.py): keys, scoping, the rate."""

from __future__ import annotations

import pytest

from wa_media.core.lookup import ApiKey, KeyRing, RateVerdict, key_fingerprint, rate_verdict

ALPHA = ApiKey("alpha", "alpha-key-0123456789", frozenset({"100000001"}))
BOTH = ApiKey("both", "both-key-01234567890", frozenset({"100000001", "100000002"}))
SINGLE = ApiKey("LOOKUP_API_KEYS[1]", "single-key-0123456789")
RING = KeyRing((ALPHA, BOTH))


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer alpha-key-0123456789", ALPHA),
        ("bearer  both-key-01234567890 ", BOTH),
        ("BEARER alpha-key-0123456789", ALPHA),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic alpha-key-0123456789", None),
        ("alpha-key-0123456789", None),
        ("Bearer alpha-key-012345678", None),
        ("Bearer alpha-key-01234567890", None),
        ("Bearer ALPHA-KEY-0123456789", None),
    ],
)
def test_a_request_s_key_is_its_bearer_token_exactly(
    header: str | None, key: ApiKey | None
) -> None:
    assert RING.by_authorization(header) == key


def test_a_key_reads_only_its_accounts() -> None:
    assert ALPHA.reads("100000001")
    assert not ALPHA.reads("100000002")
    assert BOTH.reads("100000002")
    # The single account's key reads whatever number its media were archived under.
    assert SINGLE.reads("106540352242922")


def test_keys_never_show_their_secret() -> None:
    assert "alpha-key" not in repr(ALPHA)
    assert "alpha-key" not in repr(RING)
    assert ALPHA.fingerprint == key_fingerprint("alpha-key-0123456789")
    assert len(ALPHA.fingerprint) == 16
    assert ALPHA.fingerprint not in "alpha-key-0123456789"
    assert RING.secrets == ("alpha-key-0123456789", "both-key-01234567890")
    assert not KeyRing(())


@pytest.mark.parametrize(
    ("count", "limit", "now", "verdict"),
    [
        (1, 1, 100.0, RateVerdict(True)),
        (20, 20, 100.9, RateVerdict(True)),
        (21, 20, 100.0, RateVerdict(False, 1)),
        (21, 20, 100.999, RateVerdict(False, 1)),
        (2, 1, 100.5, RateVerdict(False, 1)),
    ],
)
def test_the_rate_allows_the_limit_per_second_and_then_says_when(
    count: int, limit: int, now: float, verdict: RateVerdict
) -> None:
    assert rate_verdict(count, limit, now) == verdict
