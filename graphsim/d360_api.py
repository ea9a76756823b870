"""360dialog's routes under `/d360/`: the Cloud API's media flow behind a `D360-API-KEY`.

A look-up answers Meta's JSON whose `url` is on the lookaside host (the simulator's base
URL); a 360dialog client swaps that scheme and host for its base URL, `{sim.url}/d360`, and
downloads from `/d360/lookaside/{media_id}`. Like 360dialog, look-ups of unknown media are
limited per key: past the limit within the window, that key's look-ups answer 429 `blocked`.
"""

from __future__ import annotations

import time

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from graphsim import graph_api, uploads
from graphsim.dialects import D360, D360_KEY_HEADER, D360Dialect
from graphsim.responses import Refusal
from graphsim.routing import Endpoint
from graphsim.state import SimState

__all__ = ["PREFIX", "lookup", "rules"]

PREFIX = "/d360"


def lookup(state: SimState, request: Request, dialect: D360Dialect, media_id: str) -> Response:
    """`GET /d360/{media_id}`: Meta's look-up, unless the key is blocked."""
    state.records.count("lookups", media_id)
    dialect.require_auth(state, request)
    key = request.headers.get(D360_KEY_HEADER, "").strip()
    now = time.time()
    blocked_for = state.d360_blocker.blocked_for(key, now)
    if blocked_for is not None:
        raise Refusal(dialect.blocked(blocked_for))
    if state.media.get(media_id) is None:
        state.d360_blocker.record_failure(key, now)
    return graph_api.describe_media(state, request, dialect, media_id)


def rules() -> list[Rule]:
    """360dialog's URL rules."""
    g, u, p = graph_api, uploads, PREFIX
    return [
        Rule(f"{p}/messages", methods=["POST"], endpoint=Endpoint(g.send, "send", D360)),
        Rule(f"{p}/media", methods=["POST"], endpoint=Endpoint(u.upload_media, "upload", D360)),
        Rule(
            f"{p}/uploads",
            methods=["POST"],
            endpoint=Endpoint(u.create_session, "upload_session", D360),
        ),
        Rule(
            f"{p}/upload:<session>",
            methods=["GET"],
            endpoint=Endpoint(u.session_status, "upload_session", D360),
        ),
        Rule(
            f"{p}/upload:<session>",
            methods=["POST"],
            endpoint=Endpoint(u.upload_to_session, "upload", D360),
        ),
        Rule(
            f"{p}/lookaside/<media_id>",
            methods=["GET"],
            endpoint=Endpoint(g.download, "download", D360),
        ),
        Rule(f"{p}/<media_id>", methods=["GET"], endpoint=Endpoint(lookup, "lookup", D360)),
        Rule(f"{p}/<media_id>", methods=["DELETE"], endpoint=Endpoint(g.delete, "delete", D360)),
    ]
