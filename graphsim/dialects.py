"""The three dialects the simulator speaks: whom each accepts and how each words a refusal.

Handlers shared by several providers take a dialect and leave these two questions to it, so
the Cloud API, 360dialog and the On-Premises API differ only where their documents differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from werkzeug.wrappers import Request, Response

from graphsim.errors import (
    d360_error,
    graph_error,
    graph_message,
    invalid_parameter,
    invalid_token,
    onprem_default_code,
    onprem_error,
    status_phrase,
    unknown_object,
)
from graphsim.faults import FaultRule, Op
from graphsim.records import Provider
from graphsim.responses import Refusal, json_response
from graphsim.state import SimState

__all__ = [
    "CLOUD",
    "CLOUD_UPLOAD",
    "D360",
    "D360_KEY_HEADER",
    "ONPREM",
    "CloudDialect",
    "D360Dialect",
    "Dialect",
    "MediaDialect",
    "OnPremDialect",
    "Provider",
]

D360_KEY_HEADER = "D360-API-KEY"
# Graph's code for a media upload error; the media guide names a MIME type mismatch as a cause.
UPLOAD_ERROR_CODE = 131053


class Dialect(ABC):
    """How one provider authenticates a caller and words the answer to a fault."""

    provider: Provider

    @abstractmethod
    def authorized(self, state: SimState, request: Request) -> bool:
        """Whether the request carries a credential this provider accepts."""

    @abstractmethod
    def unauthorized(self) -> Response:
        """The answer to a missing or invalid credential."""

    @abstractmethod
    def fault_body(self, rule: FaultRule) -> Any:
        """The error body of a status fault (the rule has a status)."""

    def require_auth(self, state: SimState, request: Request) -> None:
        """Refuse the request unless it carries an accepted credential."""
        if not self.authorized(state, request):
            raise Refusal(self.unauthorized())

    def apply_fault(
        self, state: SimState, op: Op, key: str | None, base_latency: float = 0.0
    ) -> FaultRule | None:
        """Take the matching fault rule, wait its latency, and refuse if it has a status."""
        rule = state.faults.take(op, key)
        state.pause(base_latency + (rule.latency if rule else 0.0))
        if rule is not None and rule.status is not None:
            headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            raise Refusal(json_response(self.fault_body(rule), rule.status, headers))
        return rule


class MediaDialect(Dialect):
    """A dialect of the Graph media flow: look-up, lookaside download, uploads, sessions."""

    @abstractmethod
    def unknown_media(self, media_id: str) -> Response:
        """The answer to a look-up or delete of a media that does not exist."""

    @abstractmethod
    def dead_url(self) -> Response:
        """The answer to a download from an expired, edited or unknown URL."""

    @abstractmethod
    def bad_request(self, details: str) -> Response:
        """The answer to a malformed request."""

    @abstractmethod
    def bad_media(self, details: str) -> Response:
        """The answer to an upload of an unsupported type or size."""

    @abstractmethod
    def bad_offset(self, expected: int, given: int) -> Response:
        """The answer to session bytes sent for another offset than the session's."""

    @abstractmethod
    def unknown_session(self, session_id: str) -> Response:
        """The answer to a request about an upload session that does not exist."""


def _offset_text(expected: int, given: int) -> str:
    return f"file_offset {given} does not match the session's current file_offset {expected}"


class CloudDialect(MediaDialect):
    """Meta's Cloud API: Bearer tokens, Graph error bodies."""

    provider: Provider = "cloud"

    def __init__(self, schemes: tuple[str, ...] = ("bearer",)) -> None:
        self._schemes = schemes

    def authorized(self, state: SimState, request: Request) -> bool:
        """Whether the `Authorization` header holds a valid token in an accepted scheme."""
        return state.tokens.accepts(request.headers.get("Authorization"), self._schemes)

    def unauthorized(self) -> Response:
        """Graph's code 190."""
        return json_response(invalid_token(), 401)

    def fault_body(self, rule: FaultRule) -> Any:
        """The rule's Graph error."""
        return rule.error_body()

    def unknown_media(self, media_id: str) -> Response:
        """Graph's 400, code 100, as for any unknown object."""
        return json_response(unknown_object(media_id), 400)

    def dead_url(self) -> Response:
        """The lookaside host's 404."""
        return json_response(graph_error(100, "The media URL is invalid or has expired"), 404)

    def bad_request(self, details: str) -> Response:
        """Graph's 400, code 100, with the details."""
        return json_response(invalid_parameter(details), 400)

    def bad_media(self, details: str) -> Response:
        """Graph's 400, code 131053 (media upload error)."""
        error = graph_error(
            UPLOAD_ERROR_CODE,
            "(#131053) Media upload error",
            extra={"error_data": {"messaging_product": "whatsapp", "details": details}},
        )
        return json_response(error, 400)

    def bad_offset(self, expected: int, given: int) -> Response:
        """Graph's 400, code 100, the server's offset in `error_data.file_offset`."""
        error = graph_error(
            100,
            f"(#100) {_offset_text(expected, given)}",
            extra={"error_data": {"file_offset": expected}},
        )
        return json_response(error, 400)

    def unknown_session(self, session_id: str) -> Response:
        """Graph's 400, code 100, as for any unknown object."""
        return json_response(unknown_object(session_id), 400)


class D360Dialect(MediaDialect):
    """360dialog: the `D360-API-KEY` header, `{"error": "<text>"}` bodies."""

    provider: Provider = "360dialog"

    def authorized(self, state: SimState, request: Request) -> bool:
        """Whether the API key header holds a valid key."""
        return state.d360_keys.contains(request.headers.get(D360_KEY_HEADER))

    def unauthorized(self) -> Response:
        """401, `Invalid api_key`."""
        return json_response(d360_error("Invalid api_key"), 401)

    def fault_body(self, rule: FaultRule) -> Any:
        """The rule's message, else Graph's wording of its code, else the status phrase."""
        assert rule.status is not None
        error = rule.error or {}
        if isinstance(error.get("message"), str):
            return d360_error(error["message"])
        if "code" in error:
            return d360_error(graph_message(int(error["code"])))
        return d360_error(status_phrase(rule.status))

    def unknown_media(self, media_id: str) -> Response:
        """404."""
        return json_response(d360_error(f"Media {media_id} not found"), 404)

    def dead_url(self) -> Response:
        """404."""
        return json_response(d360_error("The media URL is invalid or has expired"), 404)

    def bad_request(self, details: str) -> Response:
        """400 with the details."""
        return json_response(d360_error(details), 400)

    def bad_media(self, details: str) -> Response:
        """400 with the details."""
        return json_response(d360_error(details), 400)

    def bad_offset(self, expected: int, given: int) -> Response:
        """400, the server's offset in the text."""
        return json_response(d360_error(_offset_text(expected, given)), 400)

    def unknown_session(self, session_id: str) -> Response:
        """404."""
        return json_response(d360_error(f"Upload session {session_id} not found"), 404)

    def blocked(self, retry_after: float) -> Response:
        """429 `blocked`: too many look-ups of unknown media with one key."""
        return json_response(
            d360_error("blocked"), 429, {"Retry-After": str(max(1, round(retry_after)))}
        )


class OnPremDialect(Dialect):
    """The On-Premises API: its own Bearer tokens, `{"errors": [{code, title, details}]}`."""

    provider: Provider = "onprem"

    def authorized(self, state: SimState, request: Request) -> bool:
        """Whether the `Authorization` header holds a valid On-Premises token."""
        return state.onprem_tokens.accepts(request.headers.get("Authorization"))

    def unauthorized(self) -> Response:
        """401, code 1005."""
        return self.error(401, "Invalid or missing access token")

    def fault_body(self, rule: FaultRule) -> Any:
        """The rule's code, title and details, defaulted from its status."""
        assert rule.status is not None
        error = rule.error or {}
        code = int(error.get("code", onprem_default_code(rule.status)))
        details = error.get("details") or error.get("message") or status_phrase(rule.status)
        return onprem_error(code, str(details), error.get("title"))

    def error(self, status: int, details: str, code: int | None = None) -> Response:
        """An error answer; the code defaults to the one that fits the status."""
        return json_response(onprem_error(code or onprem_default_code(status), details), status)


CLOUD = CloudDialect()
# Graph's upload endpoints also take `Authorization: OAuth <token>`, as its upload guide shows.
CLOUD_UPLOAD = CloudDialect(schemes=("bearer", "oauth"))
D360 = D360Dialect()
ONPREM = OnPremDialect()
