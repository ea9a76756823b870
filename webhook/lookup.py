"""`GET /v1/media/<wamid or media id>`: the read API (docs/consuming.md, "The lookup API").

A consumer's key (Authorization: Bearer) names the accounts it may read; the media is found
through the index in the bucket (wa_media/stores/index.py), read with `web`'s own read-only S3
credentials, and answered as its sidecar plus a presigned GET URL, or with `?redirect=1` as a
302 to that URL. A media of another account is answered exactly as one that does not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request

from wa_media.config.lookup import LookupSettings
from wa_media.core.errors import StorageError
from wa_media.core.lookup import ApiKey
from wa_media.observability.logs import get_logger, since
from wa_media.observability.metrics import lookup_metrics
from wa_media.stores.index import FoundCache, find
from wa_media.stores.lookup_rate import LookupRate
from wa_media.stores.s3 import presign_get

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Lookup", "bp"]

bp = Blueprint("lookup", __name__)
log = get_logger(__name__)
# How soon a client may try again after S3 failed.
_STORAGE_RETRY_AFTER = 5


@dataclass(frozen=True)
class Lookup:
    """What the read API uses: its settings, `web`'s S3 client, the shared rate."""

    settings: LookupSettings
    s3: S3Client
    rate: LookupRate
    cache: FoundCache = field(default_factory=FoundCache)


def _lookup() -> Lookup:
    lookup: Lookup = current_app.extensions["wa.lookup"]
    return lookup


def _answer(status: int, body: dict[str, Any], **headers: str) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers)
    return response


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finished(started: float, response: Response, key: ApiKey | None, **fields: Any) -> Response:
    metrics = lookup_metrics()
    metrics.requests.labels(status=str(response.status_code)).inc()
    metrics.seconds.observe(time.perf_counter() - started)
    log.info(
        "lookup",
        status=response.status_code,
        api_key=key.name if key else None,
        duration_ms=since(started),
        **fields,
    )
    return response


@bp.get("/v1/media/<path:ref>")
def media(ref: str) -> Response:
    """The sidecar and a presigned URL of the media a wamid or media id names."""
    started = time.perf_counter()
    lookup = _lookup()
    key = lookup.settings.keys.by_authorization(request.headers.get("Authorization"))
    if key is None:
        refused = _answer(401, {"error": "unauthorized"}, **{"WWW-Authenticate": "Bearer"})
        return _finished(started, refused, None)
    verdict = lookup.rate.admit(key)
    if not verdict.allowed:
        limited = _answer(
            429, {"error": "rate limited"}, **{"Retry-After": str(verdict.retry_after)}
        )
        return _finished(started, limited, key)
    seconds = lookup.settings.presigned_url_seconds
    try:
        locations = lookup.settings.locations_for(key)
        found = find(lookup.s3, locations, ref, key.accounts or (), lookup.cache)
        if found is None or found.sidecar is None:
            return _finished(started, _answer(404, {"error": "not found"}), key)
        url = presign_get(lookup.s3, found.entry.bucket, found.entry.key, seconds)
    except StorageError as exc:
        unavailable = _answer(
            503, {"error": "storage unavailable"}, **{"Retry-After": str(_STORAGE_RETRY_AFTER)}
        )
        return _finished(started, unavailable, key, reason=exc.reason)
    expires_at = _utc(time.time() + seconds)
    fields = {"account": found.entry.phone_number_id, "media_id": found.entry.media_id}
    if request.args.get("redirect") == "1":
        redirect = Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
        return _finished(started, redirect, key, **fields)
    body = {"sidecar": found.sidecar, "url": url, "expires_at": expires_at}
    return _finished(started, _answer(200, body), key, **fields)
