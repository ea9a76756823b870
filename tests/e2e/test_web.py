"""`web`'s HTTP answers (docs/webhook.md, "HTTP answers of `web`"), against a real Redis broker
and no worker."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from devstack import webhooks
from tests.conftest import redis_db
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE
from webhook import create_app
from webhook.config import WebSettings

pytestmark = pytest.mark.e2e

SECRET = "app-secret-1"
VERIFY = "verify-me"
B64 = base64.b64encode(b"\x01" * 32).decode()


@pytest.fixture(scope="module")
def web_redis_url() -> Iterator[str]:
    yield from redis_db(10)


@pytest.fixture
def app(web_redis_url: str) -> Flask:
    Redis.from_url(web_redis_url).flushdb()
    settings = WebSettings(
        app_secrets=("old-secret", SECRET), verify_token=VERIFY, redis_url=web_redis_url
    )
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def queue(web_redis_url: str) -> Redis:
    return Redis.from_url(web_redis_url)


def published(queue: Redis) -> list[dict[str, Any]]:
    """The tasks waiting on the media queue, decoded from Celery's wire format."""
    tasks = []
    for raw in queue.lrange(MEDIA_QUEUE, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        tasks.append({"task": envelope["headers"]["task"], "args": args})
    return tasks


def post(client: FlaskClient, body: bytes, secret: str | None = SECRET, **headers: str) -> Any:
    if secret is not None:
        headers["X-Hub-Signature-256"] = webhooks.sign(body, secret)
    return client.post("/webhook", data=body, headers=headers, content_type="application/json")


def media(n: int) -> list[dict[str, Any]]:
    return [
        webhooks.media_message("image", f"m{i}", sha256_b64=B64, mime_type="image/jpeg")
        for i in range(n)
    ]


def test_verification_handshake(client: FlaskClient) -> None:
    answer = client.get(
        "/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"
    )
    assert answer.status_code == 200
    assert answer.data == b"1158201444"
    assert answer.mimetype == "text/plain"


@pytest.mark.parametrize(
    "query",
    [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=verify-me",
        "",
    ],
)
def test_verification_refused(client: FlaskClient, query: str) -> None:
    assert client.get(f"/webhook?{query}").status_code == 403


def test_ten_messages_are_one_publish(client: FlaskClient, queue: Redis) -> None:
    too_big = webhooks.too_big_message()
    body = webhooks.encode(webhooks.envelope([*media(10), too_big, webhooks.text_message("hi")]))
    assert post(client, body).status_code == 200
    [task] = published(queue)
    assert task["task"] == FAN_OUT_TASK
    batch = task["args"][0]
    assert [job["media_id"] for job in batch["media"]] == [f"m{i}" for i in range(10)]
    assert batch["media"][0]["sha256"] == (b"\x01" * 32).hex()
    assert [reply["wamid"] for reply in batch["replies"]] == [too_big["id"]]


def test_media_are_recorded_before_the_publish(client: FlaskClient, queue: Redis) -> None:
    body = webhooks.encode(webhooks.envelope(media(3)))
    assert post(client, body).status_code == 200
    for i in range(3):
        # Kept per account: `wa:media:{phone_number_id}:{media_id}`.
        member = f"{webhooks.DEFAULT_PHONE_NUMBER_ID}:m{i}"
        record = queue.hgetall(f"wa:media:{member}")
        assert record[b"state"] == b"queued"
        assert json.loads(record[b"job"])["media_id"] == f"m{i}"
        assert queue.zscore("wa:pending", member) is not None
        assert 0 < queue.ttl(f"wa:media:{member}") <= 8 * 24 * 3600


def test_rotated_secret_is_accepted(client: FlaskClient, queue: Redis) -> None:
    body = webhooks.encode(webhooks.envelope(media(1)))
    assert post(client, body, secret="old-secret").status_code == 200
    assert len(published(queue)) == 1


def test_payload_without_media_publishes_nothing(client: FlaskClient, queue: Redis) -> None:
    body = webhooks.encode(webhooks.envelope([], statuses=[webhooks.status_update("wamid.x")]))
    assert post(client, body).status_code == 200
    assert published(queue) == []


def test_malformed_message_is_skipped_the_rest_published(client: FlaskClient, queue: Redis) -> None:
    broken = media(1)[0]
    broken["image"] = "not an object"
    body = webhooks.encode(webhooks.envelope([broken, *media(2)]))
    assert post(client, body).status_code == 200
    [task] = published(queue)
    assert len(task["args"][0]["media"]) == 2


@pytest.mark.parametrize(
    ("body", "secret", "headers", "status"),
    [
        (b'{"object":"whatsapp_business_account","entry":[]}', None, {}, 401),
        (b'{"object":"whatsapp_business_account","entry":[]}', "wrong", {}, 403),
        (b"{not json", SECRET, {}, 400),
        (b"\xff\xfe", SECRET, {}, 400),
        (b'{"object":"page","entry":[]}', SECRET, {}, 400),
        (b'{"object":"whatsapp_business_account"}', SECRET, {}, 400),
        (b"[" * 100_000 + b"]" * 100_000, SECRET, {}, 400),
    ],
)
def test_refusals(
    client: FlaskClient,
    queue: Redis,
    body: bytes,
    secret: str | None,
    headers: dict[str, str],
    status: int,
) -> None:
    assert post(client, body, secret, **headers).status_code == status
    assert published(queue) == []


def test_malformed_signature_header(client: FlaskClient, queue: Redis) -> None:
    body = webhooks.encode(webhooks.envelope(media(1)))
    for header in ["sha256=abc", "md5=" + "0" * 64, "sha256 " + "0" * 64]:
        answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": header})
        assert answer.status_code == 403
    assert published(queue) == []


def test_oversize_body_is_413_before_the_signature(client: FlaskClient, queue: Redis) -> None:
    body = b" " * (4 * 1024 * 1024 + 1)
    assert post(client, body, secret=None).status_code == 413
    assert post(client, body).status_code == 413
    assert published(queue) == []


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_broker_unreachable_is_503_and_nothing_claimed(tmp_path: Any) -> None:
    from devstack.processes import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(WebSettings(app_secrets=(SECRET,), verify_token=VERIFY, redis_url=dead))
    client = app.test_client()
    body = webhooks.encode(webhooks.envelope(media(1)))
    assert post(client, body).status_code == 503
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
