"""Deciding what a failed provider answer means, from its HTTP status and error code (pure).

One decision ladder serves every provider's dialect; each brings its own table of codes
(ErrorCodes) and its classifier, in its module of wa_media/providers: the Cloud API's
(Graph's), 360dialog's and the On-Premises API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from wa_media.core.errors import (
    ArchiveError,
    CredentialsError,
    PermanentError,
    ReengagementError,
    TemporaryError,
    ThrottledError,
)
from wa_media.core.numbers import ascii_int

__all__ = ["Classifier", "ErrorCodes", "classify", "parse_retry_after"]


@dataclass(frozen=True)
class ErrorCodes:
    """A dialect's error codes by what they mean, and the statuses that mean credentials."""

    throttling: frozenset[int] = frozenset()
    credentials: frozenset[int] = frozenset()
    reengagement: frozenset[int] = frozenset()
    temporary: frozenset[int] = frozenset()
    credentials_statuses: frozenset[int] = frozenset({401})
    credential: str = "access token"
    """What the dialect's credential is called, for the error's reason."""


class Classifier(Protocol):
    """A dialect's classification of a non-2xx answer from its status and JSON body."""

    def __call__(
        self, status: int, body: Any, *, retry_after: float | None = None, what: str = ...
    ) -> ArchiveError:
        """The error the answer means."""


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds asked for by a `Retry-After` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    seconds = ascii_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value.strip())
        return max(0.0, when.timestamp() - now)
    # A year of twenty digits overflows rather than failing to parse.
    except (TypeError, ValueError, OverflowError):
        return None


def classify(
    status: int,
    code: int | None,
    codes: ErrorCodes,
    *,
    retry_after: float | None = None,
    what: str,
) -> ArchiveError:
    """Turn a non-2xx answer into the error that says whether and how to retry."""
    label = f"{what} answered HTTP {status}" + (f", code {code}" if code is not None else "")
    if status == 429 or code in codes.throttling:
        return ThrottledError(
            f"{label}: throttled", code=code, status=status, retry_after=retry_after
        )
    if status in codes.credentials_statuses or code in codes.credentials:
        return CredentialsError(f"{label}: {codes.credential} rejected", code=code, status=status)
    if code in codes.reengagement:
        return ReengagementError(
            f"{label}: outside the 24-hour customer window", code=code, status=status
        )
    if status >= 500 or status == 408 or code in codes.temporary:
        return TemporaryError(
            f"{label}: temporary failure", code=code, status=status, retry_after=retry_after
        )
    return PermanentError(f"{label}: refused", code=code, status=status)
