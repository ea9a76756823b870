"""Handlers of the Graph media flow: look-up, lookaside download, delete and text send.

The Cloud API serves them under `/{version}/` and 360dialog under `/d360/`: each takes the
dialect that authenticates the caller and words the refusals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from graphsim.delivery import media_response
from graphsim.dialects import MediaDialect
from graphsim.errors import graph_error
from graphsim.media import Media
from graphsim.messages import addressee, new_wamid, record_send, text_problem
from graphsim.responses import Refusal, json_response
from graphsim.state import SimState

__all__ = [
    "delete",
    "describe_media",
    "download",
    "foreign",
    "foreign_url",
    "lookup",
    "mint_url",
    "send",
]


def _owned_media(state: SimState, request: Request, dialect: MediaDialect, media_id: str) -> Media:
    media = state.media.get(media_id)
    owner = request.args.get("phone_number_id")
    if media is None or (owner and media.phone_number_id and owner != media.phone_number_id):
        raise Refusal(dialect.unknown_media(media_id))
    return media


def _url_hash(state: SimState, media_id: str, ext: int) -> str:
    # Signed like a real lookaside link, so a client cannot extend a URL by editing `ext`.
    mac = hmac.new(state.url_key, f"{media_id}:{ext}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _download_url(
    state: SimState,
    media_id: str,
    *,
    expired: bool = False,
    foreign: bool = False,
    host: str | None = None,
) -> str:
    now = time.time()
    ext = int(now) - 1 if expired else math.ceil(now + state.url_ttl)
    if foreign:
        base, route = state.foreign_base_url, "foreign"
    else:
        base, route = state.base_url, "lookaside"
    if host is not None:
        parts = urlsplit(base)
        base = urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))
    query = f"ext={ext}&hash={_url_hash(state, media_id, ext)}"
    return f"{base}/{route}/{quote(media_id, safe='')}?{query}"


def foreign_url(state: SimState, media_id: str) -> str:
    """A download URL of this media on the foreign host, where a redirect fault points."""
    return _download_url(state, media_id, foreign=True)


def mint_url(
    state: SimState, media_id: str, *, expired: bool = False, foreign: bool = False
) -> str:
    """A signed download URL of a media, as a look-up or a v24+ webhook's `url` gives it."""
    return _download_url(state, media_id, expired=expired, foreign=foreign)


def _url_valid(state: SimState, media_id: str, args: Mapping[str, str]) -> bool:
    try:
        ext = int(args.get("ext", ""))
    except ValueError:
        return False
    fresh = time.time() < ext
    return fresh and hmac.compare_digest(args.get("hash", ""), _url_hash(state, media_id, ext))


def describe_media(
    state: SimState, request: Request, dialect: MediaDialect, media_id: str
) -> Response:
    """Answer an authorized look-up: the media's description and a download URL."""
    rule = dialect.apply_fault(state, "lookup", media_id, state.faults.latency)
    media = _owned_media(state, request, dialect, media_id)
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "url": _download_url(
            state,
            media_id,
            expired=rule is not None and rule.expired,
            foreign=rule is not None and rule.foreign,
            host=rule.url_host if rule is not None else None,
        ),
        "mime_type": media.mime_type,
        "sha256": media.sha256,
        "file_size": media.file_size,
        "id": media.id,
    }
    if rule is not None and rule.file_size is not None:
        body["file_size"] = rule.file_size
    if rule is not None and rule.sha256 is not None:
        body["sha256"] = rule.sha256
    return json_response(body)


def lookup(state: SimState, request: Request, dialect: MediaDialect, media_id: str) -> Response:
    """`GET /{version}/{media_id}`: describe a media and hand out a download URL."""
    state.records.count("lookups", media_id)
    dialect.require_auth(state, request)
    return describe_media(state, request, dialect, media_id)


def download(state: SimState, request: Request, dialect: MediaDialect, media_id: str) -> Response:
    """`GET /lookaside/{media_id}?ext=&hash=`: stream a media's bytes to a credential holder."""
    state.records.count("downloads", media_id)
    dialect.require_auth(state, request)
    rule = dialect.apply_fault(state, "download", media_id, state.faults.latency)
    media = state.media.get(media_id)
    if media is None or not _url_valid(state, media_id, request.args):
        return dialect.dead_url()
    if rule is not None and rule.redirect:
        return redirect(foreign_url(state, media_id), 302)
    return media_response(media, rule, state.closing)


def foreign(state: SimState, request: Request, media_id: str) -> Response:
    """`/foreign/{media_id}` on the foreign host: record what reached it, answer the bytes."""
    state.records.add_foreign(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "headers": dict(request.headers),
            "has_authorization": "Authorization" in request.headers,
            "received_at": time.time(),
        }
    )
    media = state.media.get(media_id)
    if media is None:
        return json_response(graph_error(100, "The media URL is invalid or has expired"), 404)
    return media_response(media, None)


def delete(state: SimState, request: Request, dialect: MediaDialect, media_id: str) -> Response:
    """`DELETE /{version}/{media_id}`: forget a media."""
    dialect.require_auth(state, request)
    dialect.apply_fault(state, "delete", media_id)
    _owned_media(state, request, dialect, media_id)
    state.media.delete(media_id)
    return json_response({"success": True})


def send(
    state: SimState,
    request: Request,
    dialect: MediaDialect,
    phone_number_id: str | None = None,
) -> Response:
    """`POST /{version}/{phone_number_id}/messages`: accept and record a text message.

    The customer is named by phone number (`to`) or, for one known only by it, by
    business-scoped user id (`recipient`); `to` wins when both are given. The answer's contact
    echoes the input with its `wa_id`, or its `user_id` for a send by BSUID.
    """
    dialect.require_auth(state, request)
    payload = request.get_json(force=True, silent=True)
    if not isinstance(payload, dict):
        return dialect.bad_request("The request body must be a JSON object")
    problem = text_problem(payload, cloud=True)
    if problem is not None:
        return dialect.bad_request(problem)
    address = addressee(payload)
    assert address is not None  # text_problem requires `to` or `recipient`
    state.records.count("sends", address)
    dialect.apply_fault(state, "send", address)
    wamid = new_wamid()
    record_send(state, dialect.provider, payload, wamid, phone_number_id)
    by_phone = address == payload.get("to")
    return json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": address, "wa_id" if by_phone else "user_id": address}],
            "messages": [{"id": wamid}],
        }
    )
