"""Error bodies of the three dialects (pure).

- Graph (Cloud API): `{"error": {"message", "type", "code", "error_subcode"?, "fbtrace_id"}}`
- 360dialog: `{"error": "<text>"}`
- On-Premises: `{"errors": [{"code", "title", "details"}]}`
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

__all__ = [
    "GraphError",
    "d360_error",
    "default_code",
    "graph_error",
    "graph_message",
    "invalid_parameter",
    "invalid_token",
    "onprem_default_code",
    "onprem_error",
    "status_phrase",
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


def graph_message(code: int) -> str:
    """Return the message Graph pairs with an error code, e.g. `(#4) Application request ...`."""
    return f"(#{code}) {_MESSAGES.get(code, 'Simulated error')}"


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
        "message": message or graph_message(code),
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


def status_phrase(status: int) -> str:
    """Return the reason phrase of an HTTP status, e.g. `Service Unavailable`."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Simulated error"


def d360_error(text: str) -> dict[str, str]:
    """Build a 360dialog error body."""
    return {"error": text}


# The On-Premises API's codes for the refusals the simulator makes.
_ONPREM_TITLES: dict[int, str] = {
    470: "Message failed to send because more than 24 hours have passed",
    1000: "Generic error",
    1005: "Access denied",
    1006: "Resource not found",
    1008: "Required parameter is missing",
    1009: "Parameter value is not valid",
    1011: "Service not ready",
    1014: "Internal error",
    1015: "Too many requests",
}


def onprem_default_code(status: int) -> int:
    """Return the On-Premises error code that best fits an HTTP status."""
    codes = {400: 1009, 401: 1005, 403: 1005, 404: 1006, 429: 1015, 503: 1011}
    if status in codes:
        return codes[status]
    return 1014 if status >= 500 else 1000


def onprem_error(code: int, details: str, title: str | None = None) -> dict[str, Any]:
    """Build an On-Premises error body with one error."""
    return {
        "errors": [
            {
                "code": code,
                "title": title or _ONPREM_TITLES.get(code, "Simulated error"),
                "details": details,
            }
        ]
    }
