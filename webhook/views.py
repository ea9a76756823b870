"""The HTTP endpoints of `web`: Meta's verification handshake, webhooks, health."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import gevent
import gevent.monkey
from flask import Blueprint, Response, current_app, request
from redis import Redis

from wa_media.core.delivery import Relay, relay_id
from wa_media.core.errors import (
    BodyTimeout,
    BrokerUnavailable,
    MissingSignature,
    NotWhatsAppPayload,
    RedisUnavailable,
    SignatureError,
)
from wa_media.observability.logs import get_logger, since
from wa_media.observability.metrics import web_metrics
from webhook.config import MAX_BODY_BYTES, WebSettings
from webhook.payload import ParsedPayload, parse_cloud_payload
from webhook.providers import WEBHOOK_PROVIDERS
from webhook.publisher import Publisher
from webhook.relay import body_numbers
from webhook.signature import verify

__all__ = ["bp"]

bp = Blueprint("webhook", __name__)
log = get_logger(__name__)
# The wamids a `reply_dropped` line names at most (a webhook may drop hundreds of warnings).
_LOGGED_WAMIDS = 20


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _settings() -> WebSettings:
    settings: WebSettings = current_app.extensions["wa.settings"]
    return settings


@bp.get("/webhook")
def verify_subscription() -> Response:
    """Answer Meta's subscription handshake with the challenge, only for our verify token."""
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge")
    expected = _settings().verify_token
    if (
        request.args.get("hub.mode") == "subscribe"
        and challenge is not None
        and expected is not None
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return _text(challenge, 200)
    log.warning("verification_refused", mode=request.args.get("hub.mode"))
    return _text("forbidden", 403)


def _patched_by_gevent() -> bool:
    return bool(gevent.monkey.is_module_patched("socket"))


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Bound the whole read of a body to `seconds`, however slowly its bytes trickle in.

    Under gunicorn's gevent workers (the Procfile's) the read is one greenlet's wait, cut by a
    gevent timeout at the deadline. Elsewhere (another worker class, the test client) each read
    from the socket is bounded by what is left of the deadline: a body trickled faster than
    that still holds its thread, which is why the Procfile runs gevent workers.
    """
    if _patched_by_gevent():
        with gevent.Timeout(seconds, BodyTimeout):
            yield
        return
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    except (TimeoutError, OSError) as exc:
        if isinstance(exc, TimeoutError) or "timed out" in str(exc):
            raise BodyTimeout from None
        raise
    finally:
        with suppress(OSError):
            sock.settimeout(previous)


def _read_body() -> bytes | Response:
    """The raw body; or the 413 answer when it is over MAX_BODY_BYTES, the 408 answer when it
    is not complete within WEBHOOK_BODY_TIMEOUT."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        log.warning("webhook_rejected", status=413, content_length=length)
        return _text("payload too large", 413)
    seconds = _settings().body_timeout
    try:
        with _deadline(seconds):
            if length is None:
                # A chunked body has no Content-Length: it is too large once byte 4 MiB + 1
                # arrives.
                body = request.stream.read(MAX_BODY_BYTES + 1)
            else:
                body = request.get_data(cache=False)  # a body shorter than declared is a 400
    except BodyTimeout:
        # gunicorn closes the connection after this answer: the rest of the body is never read.
        log.warning(
            "webhook_rejected",
            status=408,
            reason=f"body not received within {seconds:g} s",
            content_length=length,
            chunked=length is None,
        )
        return _text("request timeout", 408)
    if length is None and len(body) > MAX_BODY_BYTES:
        log.warning("webhook_rejected", status=413, chunked=True)
        return _text("payload too large", 413)
    return body


def _relay_of(body: bytes, numbers: list[str] | None) -> Relay | None:
    """The webhook's relay when its accounts have destinations: as received, byte for byte."""
    if numbers is None:
        return None
    signature = request.headers.get("X-Hub-Signature-256")
    return Relay(
        id=relay_id(body, signature),
        body=body,
        content_type=request.headers.get("Content-Type") or "application/json",
        signature=signature,
        numbers=tuple(numbers),
        received_at=time.time(),
    )


def _enqueue(
    body: bytes,
    parse: Callable[[Any], ParsedPayload],
    started: float,
    relayed: Callable[[Any], list[str] | None] = lambda _: None,
    **context: Any,
) -> Response:
    """Parse an authenticated body and hand its work to the broker; `relayed`: the numbers
    its relay names, or None when it goes to no destination."""
    try:
        document = json.loads(body)
        parsed = parse(document)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, NotWhatsAppPayload) else "body is not JSON"
        log.warning("webhook_rejected", status=400, reason=reason, size=len(body), **context)
        return _text("bad request", 400)

    for notice in parsed.notices:
        log.warning(
            notice.event, detail=notice.detail, wamid=notice.wamid, code=notice.code, **context
        )
    _note_dropped_replies(parsed, context)
    publisher: Publisher = current_app.extensions["wa.publisher"]
    if parsed.skipped and not _note_skipped(parsed, publisher, context):
        return _text("broker unavailable", 503)
    ids = _job_ids(parsed)
    relay = _relay_of(body, relayed(document))
    if not ids and not parsed.events and relay is None:
        # Statuses, texts, reactions: nothing to archive, counted by reason.
        log.debug(
            "webhook_ignored", skipped=len(parsed.skipped), duration_ms=since(started), **context
        )
        return _text("ok", 200)
    # One line per request, not per job: a log line costs as much as a tenth of a publish, and a
    # webhook may carry dozens of media. The ids let a search by media id or wamid find it.
    if ids:
        log.info("received", duration_ms=since(started), **ids, **context)
    if relay is not None:
        context["relay_id"] = relay.id

    publishing = time.perf_counter()
    try:
        task_id = publisher.publish(parsed, relay)
    except BrokerUnavailable as exc:
        log.error("webhook_enqueue_failed", status=503, reason=str(exc), **ids, **context)
        return _text("broker unavailable", 503)
    log.info("enqueued", task_id=task_id, duration_ms=since(publishing), **ids, **context)
    return _text("ok", 200)


def _note_skipped(parsed: ParsedPayload, publisher: Publisher, context: dict[str, Any]) -> bool:
    """Count every skip by reason, log and record those that looked like media; False when
    Redis did not take the record (the request is then answered 503, for Meta to retry)."""
    counter = web_metrics().skipped
    for skip in parsed.skipped:
        counter.labels(reason=skip.reason).inc()
        if skip.listed:
            log.warning(
                "message_skipped",
                reason=skip.reason,
                detail=skip.detail,
                wamid=skip.wamid,
                phone_number_id=skip.phone_number_id,
                type=skip.type,
                **context,
            )
    try:
        publisher.note_skipped(parsed)
    except BrokerUnavailable as exc:
        log.error("webhook_enqueue_failed", status=503, reason=str(exc), **context)
        return False
    return True


def _note_dropped_replies(parsed: ParsedPayload, context: dict[str, Any]) -> None:
    """Count the warnings dropped (never sent) and log them, one line per reason: a webhook
    may drop hundreds."""
    by_reason: dict[str, list[str]] = {}
    for dropped in parsed.dropped_replies:
        by_reason.setdefault(dropped.reason, []).append(dropped.wamid)
    counter = web_metrics().replies_dropped
    for reason, wamids in by_reason.items():
        counter.labels(reason=reason).inc(len(wamids))
        numbers = {d.phone_number_id for d in parsed.dropped_replies if d.reason == reason}
        log.warning(
            "reply_dropped",
            reason=reason,
            count=len(wamids),
            wamids=wamids[:_LOGGED_WAMIDS],
            phone_number_ids=sorted(numbers),
            **context,
        )


def _job_ids(parsed: ParsedPayload) -> dict[str, list[str]]:
    """The ids that follow a request's jobs through the logs to their workers' lines."""
    if not parsed.media and not parsed.replies:
        return {}
    media_wamids = [job.wamid for job in parsed.media]
    reply_wamids = [job.wamid for job in parsed.replies]
    numbers = [job.phone_number_id for job in parsed.media]
    numbers += [job.phone_number_id for job in parsed.replies]
    return {
        "media_ids": [job.media_id for job in parsed.media],
        "wamids": media_wamids + reply_wamids,
        "reply_wamids": reply_wamids,
        "phone_number_ids": list(dict.fromkeys(numbers)),
    }


@bp.post("/webhook")
def receive() -> Response:
    """Verify the Meta signature of a Cloud API delivery, then parse and enqueue it."""
    started = time.perf_counter()
    body = _read_body()
    if isinstance(body, Response):
        return body
    settings = _settings()
    try:
        matched = verify(body, request.headers.get("X-Hub-Signature-256"), settings.app_secrets)
    except SignatureError as exc:
        status = 401 if isinstance(exc, MissingSignature) else 403
        log.warning("webhook_rejected", status=status, reason=str(exc), size=len(body))
        return _text("unauthorized" if status == 401 else "forbidden", status)
    accounts = settings.accounts
    # The apps whose secret signed: each account's messages count only if it accepts one.
    apps = accounts.apps_of(matched)
    refused: set[str] = set()

    def signed_for(number: str) -> bool:
        if accounts.signed_by(number, apps):
            return True
        refused.add(number)
        return False

    def relayed(document: Any) -> list[str] | None:
        if not accounts.relays:  # the usual case costs nothing
            return None
        numbers = [n for n in body_numbers(document) if accounts.signed_by(n, apps)]
        return accounts.relayed(numbers)

    answer = _enqueue(
        body,
        lambda doc: parse_cloud_payload(
            doc,
            accepts=accounts.signed_accepts,
            received_at=int(time.time()),
            archives_outbound=accounts.archives_outbound,
            policy_of=accounts.policy_of,
            signed_for=signed_for,
            max_replies=settings.reply_max_per_webhook,
        ),
        started,
        relayed,
    )
    if refused:
        # Counted by message as `wrong_app` (wa_messages_skipped_total) and listed when media.
        log.warning(
            "webhook_wrong_app",
            apps=sorted(apps),
            phone_number_ids=sorted(refused),
            status=answer.status_code,
        )
    return answer


@bp.post("/webhook/<token>")
def receive_for_account(token: str) -> Response:
    """A delivery Meta does not sign for us (360dialog, On-Premises): the path token is the
    secret, and it names the account."""
    started = time.perf_counter()
    settings = _settings()
    route = settings.accounts.by_token(token)
    if route is None:
        log.warning("webhook_rejected", status=404, reason="unknown webhook token")
        return _text("not found", 404)
    body = _read_body()
    if isinstance(body, Response):
        return body
    context = {"provider": route.provider, "account": route.phone_number_id or "*"}
    received_at = int(time.time())
    read = WEBHOOK_PROVIDERS[route.provider].read_token_delivery

    def relayed(document: Any) -> list[str] | None:
        if not route.relay:
            return None
        number = route.phone_number_id
        return [number] if number is not None else body_numbers(document)

    return _enqueue(
        body,
        lambda doc: read(
            doc, route, received_at=received_at, max_replies=settings.reply_max_per_webhook
        ),
        started,
        relayed,
        **context,
    )


@bp.get("/healthz")
def healthz() -> Response:
    """The process is running."""
    return _text("ok", 200)


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers."""
    redis: Redis = current_app.extensions["wa.redis"]
    try:
        redis.ping()
    except RedisUnavailable as exc:
        log.warning("not_ready", reason=str(exc))
        return _text("redis unavailable", 503)
    return _text("ok", 200)
