"""Handlers of the simulated Graph endpoints: media look-up, download, delete and send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from graphsim.errors import graph_error, invalid_parameter, invalid_token, unknown_object
from graphsim.faults import FaultRule, Op
from graphsim.media import Media
from graphsim.responses import Refusal, json_response
from graphsim.state import SimState
from graphsim.webhooks import new_wamid

__all__ = ["delete", "download", "foreign", "lookup", "send"]

MAX_TEXT_LENGTH = 4096


def _require_token(state: SimState, request: Request) -> None:
    if not state.tokens.accepts(request.headers.get("Authorization")):
        raise Refusal(json_response(invalid_token(), 401))


def _apply_fault(
    state: SimState, op: Op, key: str | None, base_latency: float = 0.0
) -> FaultRule | None:
    rule = state.faults.take(op, key)
    state.pause(base_latency + (rule.latency if rule else 0.0))
    if rule is not None and rule.status is not None:
        headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
        raise Refusal(json_response(rule.error_body(), rule.status, headers))
    return rule


def _owned_media(state: SimState, request: Request, media_id: str) -> Media:
    media = state.media.get(media_id)
    owner = request.args.get("phone_number_id")
    if media is None or (owner and media.phone_number_id and owner != media.phone_number_id):
        raise Refusal(json_response(unknown_object(media_id), 400))
    return media


def _url_hash(state: SimState, media_id: str, ext: int) -> str:
    # Signed like a real lookaside link, so a client cannot extend a URL by editing `ext`.
    mac = hmac.new(state.url_key, f"{media_id}:{ext}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _download_url(
    state: SimState, media_id: str, *, expired: bool = False, foreign: bool = False
) -> str:
    now = time.time()
    ext = int(now) - 1 if expired else math.ceil(now + state.url_ttl)
    if foreign:
        base, route = state.foreign_base_url, "foreign"
    else:
        base, route = state.base_url, "lookaside"
    query = f"ext={ext}&hash={_url_hash(state, media_id, ext)}"
    return f"{base}/{route}/{quote(media_id, safe='')}?{query}"


def _url_valid(state: SimState, media_id: str, args: Mapping[str, str]) -> bool:
    try:
        ext = int(args.get("ext", ""))
    except ValueError:
        return False
    fresh = time.time() < ext
    return fresh and hmac.compare_digest(args.get("hash", ""), _url_hash(state, media_id, ext))


def lookup(state: SimState, request: Request, media_id: str) -> Response:
    """`GET /{version}/{media_id}`: describe a media and hand out a download URL."""
    state.records.count("lookups", media_id)
    _require_token(state, request)
    rule = _apply_fault(state, "lookup", media_id, state.faults.latency)
    media = _owned_media(state, request, media_id)
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "url": _download_url(
            state,
            media_id,
            expired=rule is not None and rule.expired,
            foreign=rule is not None and rule.foreign,
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


def _stream(media: Media, rule: FaultRule | None) -> Iterator[bytes]:
    size = media.file_size
    # Truncation stops after half the bytes while Content-Length still promises all of them;
    # the server closes a connection whose body fell short, so the client sees a short body.
    stop = size // 2 if rule and rule.truncate else size
    flip = size // 2 if rule and rule.corrupt else -1
    sent = 0
    for chunk in media.chunks():
        if sent >= stop:
            return
        piece = chunk[: stop - sent]
        if sent <= flip < sent + len(piece):
            altered = bytearray(piece)
            altered[flip - sent] ^= 0xFF
            piece = bytes(altered)
        yield piece
        sent += len(piece)


def _bytes_response(media: Media, rule: FaultRule | None) -> Response:
    return Response(
        _stream(media, rule),
        status=200,
        headers={"Content-Length": str(media.file_size)},
        content_type=media.mime_type,
        direct_passthrough=True,
    )


def _not_found() -> Response:
    return json_response(graph_error(100, "The media URL is invalid or has expired"), 404)


def download(state: SimState, request: Request, media_id: str) -> Response:
    """`GET /lookaside/{media_id}?ext=&hash=`: stream a media's bytes to a Bearer holder."""
    state.records.count("downloads", media_id)
    _require_token(state, request)
    rule = _apply_fault(state, "download", media_id, state.faults.latency)
    media = state.media.get(media_id)
    if media is None or not _url_valid(state, media_id, request.args):
        return _not_found()
    if rule is not None and rule.redirect:
        return redirect(_download_url(state, media_id, foreign=True), 302)
    return _bytes_response(media, rule)


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
    return _not_found() if media is None else _bytes_response(media, None)


def delete(state: SimState, request: Request, media_id: str) -> Response:
    """`DELETE /{version}/{media_id}`: forget a media."""
    _require_token(state, request)
    _apply_fault(state, "delete", media_id)
    _owned_media(state, request, media_id)
    state.media.delete(media_id)
    return json_response({"success": True})


def _message_problem(payload: dict[str, Any]) -> str | None:
    """Return what is wrong with a send body (DOMAIN.md section 5), or None."""
    if payload.get("messaging_product") != "whatsapp":
        return "Parameter messaging_product must be 'whatsapp'"
    to = payload.get("to")
    if not isinstance(to, str) or not to.strip():
        return "Parameter 'to' is required"
    if payload.get("recipient_type", "individual") != "individual":
        return "Parameter recipient_type must be 'individual'"
    if payload.get("type") != "text":
        return "Only messages of type 'text' are simulated"
    text = payload.get("text")
    if not isinstance(text, dict):
        return "Parameter 'text' must be an object"
    body = text.get("body")
    if not isinstance(body, str) or not body:
        return "Parameter text.body is required"
    if len(body) > MAX_TEXT_LENGTH:
        return f"Parameter text.body is longer than {MAX_TEXT_LENGTH} characters"
    if not isinstance(text.get("preview_url", False), bool):
        return "Parameter text.preview_url must be a boolean"
    return None


def send(state: SimState, request: Request, phone_number_id: str) -> Response:
    """`POST /{version}/{phone_number_id}/messages`: accept and record a text message."""
    _require_token(state, request)
    payload = request.get_json(force=True, silent=True)
    if not isinstance(payload, dict):
        return json_response(invalid_parameter("The request body must be a JSON object"), 400)
    problem = _message_problem(payload)
    if problem is not None:
        return json_response(invalid_parameter(problem), 400)
    to: str = payload["to"]
    state.records.count("sends", to)
    _apply_fault(state, "send", to)
    wamid = new_wamid()
    state.records.add_message(
        {
            "phone_number_id": phone_number_id,
            "to": to,
            "body": payload["text"]["body"],
            "wamid": wamid,
            "received_at": time.time(),
            "payload": payload,
        }
    )
    return json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
    )
