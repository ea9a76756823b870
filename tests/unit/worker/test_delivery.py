"""What one delivery attempt sends: a relayed webhook as received (signed for the destination
when it came unsigned), an archive event as Standard Webhooks says, with a fresh presigned URL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, cast

from standardwebhooks.webhooks import Webhook

from wa_media.config.destinations import Destination
from wa_media.config.settings import DeliverySettings
from wa_media.core.delivery import DeliveryRecord
from wa_media.stores.deliveries import DeliveryState
from wa_media.stores.delivery_http import DeliveryClient
from worker.delivery import Deliverer

SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()
NOW = 1_800_000_000.0
BODY = b'{"entry": [ ]}\n'


def deliverer(**settings: Any) -> tuple[Deliverer, list[tuple[str, str, int]]]:
    presigned: list[tuple[str, str, int]] = []

    def presign(bucket: str, key: str, seconds: int) -> str:
        presigned.append((bucket, key, seconds))
        return f"https://s3.example/{bucket}/{key}?X-Amz-Expires={seconds}"

    made = Deliverer(
        DeliverySettings(**settings),
        {},
        cast(DeliveryState, None),  # request() reads no record
        DeliveryClient(1),
        max_countdown=1800,
        presign=presign,
    )
    return made, presigned


def record(**fields: str) -> DeliveryRecord:
    base = {"kind": "relay", "state": "pending", "destination": "crm", "received_at": "1"}
    made = DeliveryRecord.from_hash("dlv_1", {**base, **fields})
    assert made is not None
    return made


def test_a_signed_webhook_goes_as_received_with_its_signature() -> None:
    sender, _ = deliverer()
    relay = record(content_type="application/json; charset=utf-8", signature="sha256=ab")
    request = sender.request(relay, Destination("crm", "https://crm.example", SECRET), NOW, BODY)
    assert request is not None
    assert request.body == BODY
    assert request.headers == {
        "Content-Type": "application/json; charset=utf-8",
        "X-Hub-Signature-256": "sha256=ab",
        "webhook-id": "dlv_1",
        "webhook-timestamp": str(int(NOW)),
    }


def test_an_unsigned_webhook_is_signed_for_the_destination() -> None:
    sender, _ = deliverer()
    relay = record(content_type="application/json")
    request = sender.request(relay, Destination("crm", "https://crm.example", SECRET), NOW, BODY)
    assert request is not None
    assert "X-Hub-Signature-256" not in request.headers
    assert request.headers["webhook-id"] == "dlv_1"
    signed = Webhook(SECRET).sign("dlv_1", _moment(NOW), BODY.decode())
    assert request.headers["webhook-signature"] == signed
    # Without a secret it goes unsigned, its body unchanged.
    bare = sender.request(relay, Destination("crm", "https://crm.example"), NOW, BODY)
    assert bare is not None
    assert bare.headers == {"Content-Type": "application/json"}


def test_a_relay_whose_body_is_gone_sends_nothing() -> None:
    sender, _ = deliverer()
    assert sender.request(record(), Destination("crm", "https://x.example"), NOW, None) is None


def test_an_event_is_its_envelope_signed_with_its_id_and_a_fresh_url() -> None:
    sender, presigned = deliverer(presigned_urls=True, presigned_seconds=600)
    event = {
        "type": "media.archived",
        "timestamp": 0,
        "data": {"wamid": "w1", "bucket": "b", "key": "k/1.jpg"},
        "phone_number_id": "111",
    }
    delivery = record(kind="event", source="evt_1", event=json.dumps(event))
    feed = Destination("feed", "https://feed.example", SECRET)
    request = sender.request(delivery, feed, NOW, None)
    assert request is not None
    document = json.loads(request.body)
    assert document == {
        "type": "media.archived",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "data": {
            "wamid": "w1",
            "bucket": "b",
            "key": "k/1.jpg",
            "url": "https://s3.example/b/k/1.jpg?X-Amz-Expires=600",
            "url_expires_at": "2027-01-15T08:10:00.000Z",
        },
    }
    assert presigned == [("b", "k/1.jpg", 600)]
    headers = {**request.headers, "webhook-timestamp": str(int(NOW))}
    assert headers["webhook-id"] == "evt_1"
    assert (
        Webhook(SECRET).sign("evt_1", _moment(NOW), request.body.decode())
        == (headers["webhook-signature"])
    )
    # Off: no URL.
    plain, none = deliverer()
    unsigned = plain.request(delivery, feed, NOW, None)
    assert unsigned is not None
    assert "url" not in json.loads(unsigned.body)["data"]
    assert none == []


def _moment(unix: float) -> datetime:
    return datetime.fromtimestamp(int(unix), tz=UTC)
