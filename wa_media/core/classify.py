"""Deciding what a failed provider answer means, from its HTTP status and error code (pure).

One decision ladder serves the three dialects; each brings its own table of codes:
- Graph (Cloud API): `{"error": {"code", ...}}`, the code decides before the status;
- 360dialog: `{"error": "<text>"}`, only the status (a Graph error it passes on is Meta's);
- On-Premises: `{"errors": [{"code", "title", "details"}]}`, the code or the status.
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

__all__ = [
    "D360_CODES",
    "GRAPH_CODES",
    "ONPREM_CODES",
    "THROTTLING_CODES",
    "Classifier",
    "ErrorCodes",
    "classify",
    "classify_d360_error",
    "classify_graph_error",
    "classify_onprem_error",
    "parse_retry_after",
]

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})


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


GRAPH_CODES = ErrorCodes(
    throttling=THROTTLING_CODES,
    credentials=frozenset({190}),
    reengagement=frozenset({131047}),
    temporary=frozenset({1, 2, 131000}),
)
# 360dialog's bodies carry no code; a rejected or blocked key is 401 or 403.
D360_CODES = ErrorCodes(credentials_statuses=frozenset({401, 403}), credential="API key")
# 1005 access denied, 1015 too many requests, 470 re-engagement (131047's twin),
# 1011 service not ready, 1014 internal error.
ONPREM_CODES = ErrorCodes(
    throttling=frozenset({1015}),
    credentials=frozenset({1005}),
    reengagement=frozenset({470}),
    temporary=frozenset({1011, 1014}),
)


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


def _graph_code(body: Any) -> int | None:
    error = body.get("error") if isinstance(body, dict) else None
    return ascii_int(error.get("code")) if isinstance(error, dict) else None


def classify_graph_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "Graph API call"
) -> ArchiveError:
    """A Graph answer's error. The code decides before the status: Meta answers throttling and
    expired tokens with 400 or 403 as well as 429 and 401."""
    return classify(status, _graph_code(body), GRAPH_CODES, retry_after=retry_after, what=what)


def classify_d360_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "360dialog call"
) -> ArchiveError:
    """A 360dialog answer's error, by its status; a Graph error body passed on is Meta's."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return classify_graph_error(status, body, retry_after=retry_after, what=what)
    return classify(status, None, D360_CODES, retry_after=retry_after, what=what)


def _onprem_code(body: Any) -> int | None:
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    return ascii_int(first.get("code")) if isinstance(first, dict) else None


def classify_onprem_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "On-Premises call"
) -> ArchiveError:
    """An On-Premises answer's error, by its first error's code or its status."""
    return classify(status, _onprem_code(body), ONPREM_CODES, retry_after=retry_after, what=what)
