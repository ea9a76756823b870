"""Graph API error bodies: `{"error": {"message", "type", "code", "error_subcode"?, ...}}`."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "GraphError",
    "default_code",
    "graph_error",
    "invalid_parameter",
    "invalid_token",
    "unknown_object",
]

GraphError = dict[str, Any]

_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "Service temporarily unavailable",
    4: "Application request limit reached",
    10: "Application does not have permission for this action",
    100: "Invalid parameter",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}


def default_code(status: int) -> int:
    """Return the Graph error code Meta most often pairs with an HTTP status."""
    if status == 401:
        return 190
    if status == 403:
        return 10
    if status == 429:
        return 130429
    if status >= 500:
        return 131000
    return 100


def _fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)


def graph_error(
    code: int,
    message: str | None = None,
    *,
    type_: str = "OAuthException",
    subcode: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GraphError:
    """Build a Graph error body; `extra` is merged last, so it may override any field."""
    error: dict[str, Any] = {
        "message": message or f"(#{code}) {_MESSAGES.get(code, 'Simulated error')}",
        "type": type_,
        "code": code,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = _fbtrace_id()
    if extra:
        error.update(extra)
    return {"error": error}


def invalid_token() -> GraphError:
    """Build the answer to a missing, expired or revoked access token (code 190)."""
    return graph_error(
        190,
        "Error validating access token: The session is invalid because the user logged out.",
        subcode=467,
    )


def unknown_object(object_id: str) -> GraphError:
    """Build the answer to a look-up of a media id that does not exist (code 100)."""
    return graph_error(
        100,
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        type_="GraphMethodException",
        subcode=33,
    )


def invalid_parameter(details: str) -> GraphError:
    """Build the answer to a malformed request body (code 100)."""
    return graph_error(
        100,
        extra={"error_data": {"messaging_product": "whatsapp", "details": details}},
    )
