"""Deciding what a failed Graph API answer means, from its HTTP status and error code."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

from worker.errors import (
    ArchiveError,
    CredentialsError,
    PermanentError,
    ReengagementError,
    TemporaryError,
    ThrottledError,
)

__all__ = ["THROTTLING_CODES", "classify_graph_error", "parse_retry_after"]

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
TEMPORARY_CODES = frozenset({1, 2, 131000})
CREDENTIALS_CODE = 190
REENGAGEMENT_CODE = 131047


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds asked for by a `Retry-After` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _error_code(body: Any) -> int | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def classify_graph_error(
    status: int, body: Any, *, retry_after: float | None = None, what: str = "Graph API call"
) -> ArchiveError:
    """Turn a non-2xx Graph answer into the error that says whether and how to retry.

    The code decides before the status: Meta answers throttling and expired tokens with
    400 or 403 as well as 429 and 401.
    """
    code = _error_code(body)
    label = f"{what} answered HTTP {status}" + (f", code {code}" if code is not None else "")
    if status == 429 or code in THROTTLING_CODES:
        return ThrottledError(f"{label}: throttled", code=code, retry_after=retry_after)
    if status == 401 or code == CREDENTIALS_CODE:
        return CredentialsError(f"{label}: access token rejected", code=code)
    if code == REENGAGEMENT_CODE:
        return ReengagementError(f"{label}: outside the 24-hour customer window", code=code)
    if status >= 500 or status == 408 or code in TEMPORARY_CODES:
        return TemporaryError(f"{label}: temporary failure", code=code, retry_after=retry_after)
    return PermanentError(f"{label}: refused", code=code)
