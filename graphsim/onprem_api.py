"""The On-Premises API's routes under `/onprem/v1/`: media by id, uploads, text sends.

There is no URL step: `GET /v1/media/{id}` answers the bytes. Media ids are UUIDs; register
one in the shared store with `add_media(..., media_id=str(uuid.uuid4()))`.
"""

from __future__ import annotations

import secrets
import uuid

from werkzeug.http import parse_options_header
from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from graphsim import graph_api
from graphsim.delivery import media_response
from graphsim.dialects import ONPREM, OnPremDialect
from graphsim.mediatypes import MAX_UPLOAD_SIZE
from graphsim.messages import record_send, text_problem
from graphsim.records import LOGGED_KEY
from graphsim.responses import json_response
from graphsim.routing import Endpoint
from graphsim.state import SimState
from graphsim.uploads import hang_up_after, read_body

__all__ = ["PREFIX", "delete", "download", "rules", "send", "upload"]

PREFIX = "/onprem"

_MISSING, _INVALID = 1008, 1009


def _message_id() -> str:
    # Shaped like the On-Premises ids in its documents, e.g. gBEGkYiEB1VXAglK1ZEqA1YKPrU.
    return "gBEG" + secrets.token_urlsafe(18)[:23]


def download(state: SimState, request: Request, dialect: OnPremDialect, media_id: str) -> Response:
    """`GET /v1/media/{id}`: stream the media's bytes with its Content-Type."""
    state.records.count("downloads", media_id)
    dialect.require_auth(state, request)
    rule = dialect.apply_fault(state, "download", media_id, state.faults.latency)
    media = state.media.get(media_id)
    if media is None:
        return dialect.error(404, f"Media {media_id} not found")
    if rule is not None and rule.redirect:
        return redirect(graph_api.foreign_url(state, media_id), 302)
    return media_response(media, rule, state.closing)


def upload(state: SimState, request: Request, dialect: OnPremDialect) -> Response:
    """`POST /v1/media` with the raw bytes and their Content-Type: a new media's UUID."""
    dialect.require_auth(state, request)
    content_type = request.headers.get("Content-Type", "")
    if not content_type:
        return dialect.error(400, "Content-Type header is required", _MISSING)
    # Documents may be of any valid MIME type, so the type is only checked for its form.
    mime_type = parse_options_header(content_type)[0]
    if mime_type.count("/") != 1 or not all(mime_type.split("/")):
        return dialect.error(400, f"Invalid Content-Type {content_type}", _INVALID)
    rule = dialect.apply_fault(state, "upload", None)
    if rule is not None and rule.interrupt_after is not None:
        hang_up_after(request, rule.interrupt_after)
    data = read_body(request.stream, MAX_UPLOAD_SIZE + 1)
    if not data:
        return dialect.error(400, "The request body holds no media", _MISSING)
    if len(data) > MAX_UPLOAD_SIZE:
        return dialect.error(400, f"Media is larger than {MAX_UPLOAD_SIZE} bytes", _INVALID)
    media = state.media.add_bytes(data, content_type, media_id=str(uuid.uuid4()))
    request.environ[LOGGED_KEY] = media.id
    return json_response({"media": [{"id": media.id}]})


def delete(state: SimState, request: Request, dialect: OnPremDialect, media_id: str) -> Response:
    """`DELETE /v1/media/{id}`: forget a media."""
    dialect.require_auth(state, request)
    dialect.apply_fault(state, "delete", media_id)
    if not state.media.delete(media_id):
        return dialect.error(404, f"Media {media_id} not found")
    return json_response({})


def send(state: SimState, request: Request, dialect: OnPremDialect) -> Response:
    """`POST /v1/messages`: accept and record a text message."""
    dialect.require_auth(state, request)
    payload = request.get_json(force=True, silent=True)
    if not isinstance(payload, dict):
        return dialect.error(400, "The request body must be a JSON object", _INVALID)
    problem = text_problem(payload, cloud=False)
    if problem is not None:
        return dialect.error(400, problem, _INVALID)
    to: str = payload["to"]
    state.records.count("sends", to)
    dialect.apply_fault(state, "send", to)
    message_id = _message_id()
    record_send(state, dialect.provider, payload, message_id)
    return json_response({"messages": [{"id": message_id}]})


def rules() -> list[Rule]:
    """The On-Premises URL rules."""
    p = f"{PREFIX}/v1"
    return [
        Rule(f"{p}/messages", methods=["POST"], endpoint=Endpoint(send, "send", ONPREM)),
        Rule(f"{p}/media", methods=["POST"], endpoint=Endpoint(upload, "upload", ONPREM)),
        Rule(
            f"{p}/media/<media_id>",
            methods=["GET"],
            endpoint=Endpoint(download, "download", ONPREM),
        ),
        Rule(
            f"{p}/media/<media_id>",
            methods=["DELETE"],
            endpoint=Endpoint(delete, "delete", ONPREM),
        ),
    ]
