"""Handlers of the control API under `/_sim/` (no auth): set up media and faults, read records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from graphsim.blocking import DEFAULT_WINDOW
from graphsim.faults import FaultRule
from graphsim.graph_api import mint_url
from graphsim.responses import json_response
from graphsim.routing import Endpoint
from graphsim.state import SimState, TokenSet

__all__ = [
    "add_fault",
    "add_generated_media",
    "add_media",
    "clear_faults",
    "download_url",
    "foreign_requests",
    "list_faults",
    "remove_fault",
    "request_log",
    "reset",
    "rules",
    "sent_messages",
    "set_d360_blocking",
    "set_d360_keys",
    "set_latency",
    "set_onprem_tokens",
    "set_tokens",
    "stats",
    "upload_sessions",
]

P = ParamSpec("P")
Handler = Callable[Concatenate[SimState, Request, P], Response]


def _bad_input_is_400(handler: Handler[P]) -> Handler[P]:
    def wrapper(
        state: SimState, request: Request, /, *args: P.args, **kwargs: P.kwargs
    ) -> Response:
        try:
            return handler(state, request, *args, **kwargs)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)

    return wrapper


def _json_object(request: Request) -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type[Any], *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    # bool subclasses int, but `true` is no size.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"field {name!r} must be {kind.__name__}")
    return value


@_bad_input_is_400
def add_media(state: SimState, request: Request) -> Response:
    """`POST /_sim/media`: store the raw body as a media of its Content-Type."""
    mime_type = request.headers.get("Content-Type")
    if not mime_type:
        raise ValueError("the Content-Type header gives the media's mime type")
    media = state.media.add_bytes(
        request.get_data(),
        mime_type,
        media_id=request.args.get("media_id") or None,
        phone_number_id=request.args.get("phone_number_id") or None,
    )
    return json_response(media.describe())


@_bad_input_is_400
def add_generated_media(state: SimState, request: Request) -> Response:
    """`POST /_sim/media/generated`: store deterministic pseudo-random bytes."""
    body = _json_object(request)
    media = state.media.add_generated(
        _field(body, "size", int),
        _field(body, "seed", int),
        _field(body, "mime_type", str),
        media_id=_field(body, "media_id", str, required=False),
        phone_number_id=_field(body, "phone_number_id", str, required=False),
    )
    return json_response(media.describe())


@_bad_input_is_400
def download_url(state: SimState, request: Request, media_id: str) -> Response:
    """`POST /_sim/media/{id}/url`: a signed download URL of the media, as a v24+ webhook's
    `url`; `{"expired": true}` mints one whose `ext` is past, `{"foreign": true}` one on the
    foreign host. No provider request is logged."""
    body = _json_object(request) if request.get_data() else {}
    expired = _field(body, "expired", bool, required=False) or False
    foreign = _field(body, "foreign", bool, required=False) or False
    if state.media.get(media_id) is None:
        return json_response({"error": f"no media {media_id!r}"}, 404)
    return json_response({"url": mint_url(state, media_id, expired=expired, foreign=foreign)})


@_bad_input_is_400
def add_fault(state: SimState, request: Request) -> Response:
    """`POST /_sim/faults`: add a fault rule, answering its id."""
    rule = FaultRule.from_json(request.get_json(force=True, silent=True))
    return json_response({"id": state.faults.add(rule)})


def list_faults(state: SimState, request: Request) -> Response:
    """`GET /_sim/faults`: the rules with their remaining uses."""
    return json_response(state.faults.describe())


def clear_faults(state: SimState, request: Request) -> Response:
    """`DELETE /_sim/faults`: drop every rule."""
    state.faults.clear()
    return json_response({"success": True})


def remove_fault(state: SimState, request: Request, fault_id: str) -> Response:
    """`DELETE /_sim/faults/{id}`: drop one rule."""
    if not state.faults.remove(fault_id):
        return json_response({"error": f"no fault {fault_id!r}"}, 404)
    return json_response({"success": True})


@_bad_input_is_400
def set_latency(state: SimState, request: Request) -> Response:
    """`PUT /_sim/latency`: seconds added to every look-up and download."""
    seconds = _json_object(request).get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise ValueError("field 'seconds' must be a number")
    state.faults.latency = float(seconds)
    return json_response({"seconds": state.faults.latency})


def sent_messages(state: SimState, request: Request) -> Response:
    """`GET /_sim/messages`: the messages accepted by the send endpoint."""
    return json_response(state.records.messages())


def foreign_requests(state: SimState, request: Request) -> Response:
    """`GET /_sim/foreign`: the requests that reached the foreign host."""
    return json_response(state.records.foreign())


def request_log(state: SimState, request: Request) -> Response:
    """`GET /_sim/requests`: every Graph API request with its answer, oldest first."""
    return json_response(state.records.requests())


def stats(state: SimState, request: Request) -> Response:
    """`GET /_sim/stats`: request counters per media id (and per recipient for sends)."""
    return json_response(state.records.stats())


def _replace(credentials: TokenSet, request: Request, name: str) -> Response:
    values = _field(_json_object(request), name, list)
    if not all(isinstance(value, str) and value for value in values):
        raise ValueError(f"{name} must be non-empty strings")
    credentials.replace(values)
    return json_response({"success": True})


@_bad_input_is_400
def set_tokens(state: SimState, request: Request) -> Response:
    """`PUT /_sim/tokens`: replace the set of valid Cloud API access tokens."""
    return _replace(state.tokens, request, "tokens")


@_bad_input_is_400
def set_d360_keys(state: SimState, request: Request) -> Response:
    """`PUT /_sim/d360/keys`: replace the set of valid 360dialog API keys."""
    return _replace(state.d360_keys, request, "keys")


@_bad_input_is_400
def set_onprem_tokens(state: SimState, request: Request) -> Response:
    """`PUT /_sim/onprem/tokens`: replace the set of valid On-Premises tokens."""
    return _replace(state.onprem_tokens, request, "tokens")


@_bad_input_is_400
def set_d360_blocking(state: SimState, request: Request) -> Response:
    """`PUT /_sim/d360/blocking`: block a key after `limit` unknown look-ups in `window` s."""
    body = _json_object(request)
    limit = _field(body, "limit", int)
    window = body.get("window", DEFAULT_WINDOW)
    if not isinstance(window, int | float) or isinstance(window, bool):
        raise ValueError("field 'window' must be a number")
    state.d360_blocker.configure(limit, float(window))
    return json_response({"limit": limit, "window": float(window)})


def upload_sessions(state: SimState, request: Request) -> Response:
    """`GET /_sim/uploads`: every resumable upload session, oldest first."""
    return json_response(state.sessions.describe())


def reset(state: SimState, request: Request) -> Response:
    """`POST /_sim/reset`: back to a fresh simulator."""
    state.reset()
    return json_response({"success": True})


def rules() -> list[Rule]:
    """The control API's URL rules."""

    def rule(path: str, method: str, handler: Handler[...]) -> Rule:
        return Rule(f"/_sim/{path}", methods=[method], endpoint=Endpoint(handler))

    return [
        rule("media", "POST", add_media),
        rule("media/generated", "POST", add_generated_media),
        rule("media/<media_id>/url", "POST", download_url),
        rule("faults", "POST", add_fault),
        rule("faults", "GET", list_faults),
        rule("faults", "DELETE", clear_faults),
        rule("faults/<fault_id>", "DELETE", remove_fault),
        rule("latency", "PUT", set_latency),
        rule("messages", "GET", sent_messages),
        rule("foreign", "GET", foreign_requests),
        rule("requests", "GET", request_log),
        rule("stats", "GET", stats),
        rule("tokens", "PUT", set_tokens),
        rule("d360/keys", "PUT", set_d360_keys),
        rule("d360/blocking", "PUT", set_d360_blocking),
        rule("onprem/tokens", "PUT", set_onprem_tokens),
        rule("uploads", "GET", upload_sessions),
        rule("reset", "POST", reset),
    ]
