"""A short, bounded label for why a try failed: the `reason` of metrics and logs (pure).

Metric labels must stay few (every value is a time series), so a failure is never labelled
with its text or an id, only with one of REASONS; the text goes to the logs and the records.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from wa_media.core.errors import (
    ArchiveError,
    BrokerUnavailable,
    BusyError,
    CredentialsError,
    Expired,
    ForeignHost,
    IntegrityError,
    InvalidId,
    KeyConflict,
    NoAccount,
    PermanentError,
    RedisUnavailable,
    ReengagementError,
    SizeMismatch,
    StorageError,
    TemporaryError,
    ThrottledError,
    TimedOut,
    TooBig,
    UrlRefused,
    WorkerDied,
)

__all__ = ["NOT_FOUND_CODES", "REASONS", "Reason", "reason_of"]

Reason = Literal[
    "sha256_mismatch",
    "size_mismatch",
    "rate_limited",
    "token_rejected",
    "no_account",
    "s3_unavailable",
    "redis_unavailable",
    "broker_unavailable",
    "provider_unavailable",
    "timeout",
    "busy",
    "url_refused",
    "too_big",
    "not_found",
    "refused",
    "expired",
    "worker_died",
    "host_not_allowed",
    "invalid_id",
    "key_conflict",
    "reengagement",
    "other",
]
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

# Graph's code 100 ("invalid parameter") is how Meta answers an unknown or expired media id.
NOT_FOUND_CODES = frozenset({100})

# Most specific first: the first class the error is an instance of decides.
_BY_CLASS: tuple[tuple[type[ArchiveError], Reason], ...] = (
    (NoAccount, "no_account"),
    (CredentialsError, "token_rejected"),
    (ThrottledError, "rate_limited"),
    (SizeMismatch, "size_mismatch"),
    (IntegrityError, "sha256_mismatch"),
    (RedisUnavailable, "redis_unavailable"),
    (BrokerUnavailable, "broker_unavailable"),
    (StorageError, "s3_unavailable"),
    (BusyError, "busy"),
    (TimedOut, "timeout"),
    (TemporaryError, "provider_unavailable"),
    (UrlRefused, "url_refused"),
    (TooBig, "too_big"),
    (Expired, "expired"),
    (WorkerDied, "worker_died"),
    (ForeignHost, "host_not_allowed"),
    (InvalidId, "invalid_id"),
    (KeyConflict, "key_conflict"),
    (ReengagementError, "reengagement"),
)


def reason_of(error: BaseException) -> Reason:
    """The label of a failure: from the error's class, else from the provider's answer."""
    for kind, reason in _BY_CLASS:
        if isinstance(error, kind):
            return reason
    if isinstance(error, PermanentError) and error.status is not None:
        if error.status == 404 or error.code in NOT_FOUND_CODES:
            return "not_found"
        return "refused"
    # Vendors' errors never get here as they were raised: their adapters translate them.
    return "other"
