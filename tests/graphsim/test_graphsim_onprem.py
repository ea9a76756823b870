"""Tests of graphsim's On-Premises dialect under `/onprem`, and the On-Premises webhook builders
(devstack/webhooks.py)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

import pytest
import requests

from devstack import webhooks
from graphsim import Simulator, SimulatorClient, SimulatorError

AUTH = {"Authorization": "Bearer onprem-token"}
TIMEOUT = 5.0


def media_url(sim: Simulator, media_id: str) -> str:
    return f"{sim.onprem_url}/v1/media/{media_id}"


def download(
    sim: Simulator, media_id: str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.get(
        media_url(sim, media_id), headers=AUTH if headers is None else headers, timeout=TIMEOUT
    )


def send(sim: Simulator, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{sim.onprem_url}/v1/messages",
        headers=AUTH if headers is None else headers,
        json=body,
        timeout=TIMEOUT,
    )


def text_body(to: str = "16505551234", text: str = "hello") -> dict[str, Any]:
    return {"recipient_type": "individual", "to": to, "type": "text", "text": {"body": text}}


def only_error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"errors"}
    [error] = body["errors"]
    assert set(error) == {"code", "title", "details"}
    result: dict[str, Any] = error
    return result


def add_uuid_media(client: SimulatorClient, data: bytes, mime_type: str) -> str:
    media_id = str(uuid.uuid4())
    assert client.add_media(data, mime_type, media_id=media_id).id == media_id
    return media_id


# --- media ----------------------------------------------------------------------------------


def test_download_answers_the_bytes_directly(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(700_000)  # several chunks
    media_id = add_uuid_media(client, data, "audio/ogg; codecs=opus")

    response = download(sim, media_id)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/ogg; codecs=opus"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.content == data
    [entry] = client.requests()
    assert (entry["op"], entry["media_id"], entry["provider"]) == ("download", media_id, "onprem")
    assert client.stats()["downloads"] == {media_id: 1}


def test_generated_media_with_a_uuid_downloads(sim: Simulator, client: SimulatorClient) -> None:
    media_id = str(uuid.uuid4())
    record = client.add_generated_media(123_456, 9, "video/mp4", media_id=media_id)

    body = download(sim, media_id).content

    assert hashlib.sha256(body).hexdigest() == record.sha256


def test_unknown_media_is_404_code_1006(sim: Simulator, client: SimulatorClient) -> None:
    response = download(sim, str(uuid.uuid4()))

    assert response.status_code == 404
    error = only_error(response)
    assert error["code"] == 1006
    assert error["title"] == "Resource not found"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sim-token"}, {"D360-API-KEY": "d360-key"}],
    ids=["missing", "cloud-token", "d360-key"],
)
def test_every_endpoint_needs_an_onprem_token(
    sim: Simulator, client: SimulatorClient, headers: dict[str, str]
) -> None:
    media_id = add_uuid_media(client, b"x", "image/jpeg")

    responses = [
        download(sim, media_id, headers=headers),
        send(sim, text_body(), headers=headers),
        requests.delete(media_url(sim, media_id), headers=headers, timeout=TIMEOUT),
        requests.post(
            f"{sim.onprem_url}/v1/media",
            headers={**headers, "Content-Type": "image/png"},
            data=b"x",
            timeout=TIMEOUT,
        ),
    ]

    for response in responses:
        assert response.status_code == 401
        assert only_error(response)["code"] == 1005
    assert {e["authorized"] for e in client.requests()} == {False}


def test_tokens_can_be_replaced_and_reset(sim: Simulator, client: SimulatorClient) -> None:
    media_id = add_uuid_media(client, b"x", "image/jpeg")

    client.set_onprem_tokens(["rotated"])
    assert download(sim, media_id).status_code == 401
    assert download(sim, media_id, headers={"Authorization": "Bearer rotated"}).ok
    client.set_onprem_tokens(["onprem-token"])
    assert download(sim, media_id).ok
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.set_onprem_tokens([""])


def test_upload_raw_bytes_answers_a_uuid(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(100_000)

    response = requests.post(
        f"{sim.onprem_url}/v1/media",
        headers={**AUTH, "Content-Type": "image/png"},
        data=data,
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    [media] = response.json()["media"]
    assert uuid.UUID(media["id"])
    fetched = download(sim, media["id"])
    assert fetched.content == data
    assert fetched.headers["Content-Type"] == "image/png"
    assert client.requests()[0]["media_id"] == media["id"]


@pytest.mark.parametrize(
    ("content_type", "data", "code"),
    [(None, b"x", 1008), ("png", b"x", 1009), ("image/png", b"", 1008)],
    ids=["no-type", "bad-type", "empty"],
)
def test_a_malformed_upload_is_400(
    sim: Simulator, client: SimulatorClient, content_type: str | None, data: bytes, code: int
) -> None:
    headers = dict(AUTH) if content_type is None else {**AUTH, "Content-Type": content_type}

    response = requests.post(
        f"{sim.onprem_url}/v1/media", headers=headers, data=data, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert only_error(response)["code"] == code


def test_delete_forgets_the_media(sim: Simulator, client: SimulatorClient) -> None:
    media_id = add_uuid_media(client, b"x", "image/jpeg")

    deleted = requests.delete(media_url(sim, media_id), headers=AUTH, timeout=TIMEOUT)
    again = requests.delete(media_url(sim, media_id), headers=AUTH, timeout=TIMEOUT)

    assert deleted.status_code == 200
    assert download(sim, media_id).status_code == 404
    assert again.status_code == 404
    assert only_error(again)["code"] == 1006


def test_unknown_route_answers_in_onprem_shape(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.get(f"{sim.onprem_url}/v1/contacts", headers=AUTH, timeout=TIMEOUT)

    assert response.status_code == 404
    assert only_error(response)["code"] == 1006


# --- sending --------------------------------------------------------------------------------


def test_send_answers_a_message_id_and_records_the_provider(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = send(sim, text_body(to="447700900123", text="too big"))

    assert response.status_code == 200
    [message] = response.json()["messages"]
    assert set(response.json()) == {"messages"}
    assert message["id"].startswith("gBEG")
    [sent] = client.sent_messages()
    assert (sent["provider"], sent["phone_number_id"]) == ("onprem", None)
    assert (sent["to"], sent["body"], sent["wamid"]) == ("447700900123", "too big", message["id"])
    assert client.stats()["sends"] == {"447700900123": 1}
    [entry] = client.requests()
    assert (entry["op"], entry["media_id"], entry["provider"]) == ("send", "447700900123", "onprem")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {k: v for k, v in text_body().items() if k != "to"},
        {**text_body(), "recipient_type": "group"},
        {**text_body(), "type": "image"},
        {**text_body(), "text": {"body": "x" * 4097}},
    ],
    ids=["not-object", "no-to", "group", "type", "too-long"],
)
def test_a_malformed_send_is_400(sim: Simulator, client: SimulatorClient, body: object) -> None:
    response = send(sim, body)

    assert response.status_code == 400
    assert only_error(response)["code"] == 1009
    assert client.sent_messages() == []


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(500, 1014), (503, 1011), (429, 1015), (404, 1006), (400, 1009)]
)
def test_status_faults_pick_an_onprem_code(
    sim: Simulator, client: SimulatorClient, status: int, code: int
) -> None:
    media_id = add_uuid_media(client, b"x", "image/jpeg")
    client.add_fault(op="download", status=status)

    response = download(sim, media_id)

    assert response.status_code == status
    assert only_error(response)["code"] == code
    assert download(sim, media_id).status_code == 200


def test_send_fault_with_its_own_code(sim: Simulator, client: SimulatorClient) -> None:
    client.add_fault(op="send", media_id="111", status=400, error={"code": 470})

    refused = send(sim, text_body(to="111"))
    accepted = send(sim, text_body(to="222"))

    assert refused.status_code == 400
    error = only_error(refused)
    assert error["code"] == 470
    assert "24 hours" in error["title"]
    assert accepted.status_code == 200
    assert [m["to"] for m in client.sent_messages()] == ["222"]


def test_truncate_corrupt_and_latency_faults(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(400_000)
    media_id = add_uuid_media(client, data, "video/mp4")
    client.add_fault(op="download", media_id=media_id, truncate=True)
    client.add_fault(op="download", media_id=media_id, corrupt=True)
    client.add_fault(op="download", media_id=media_id, latency=0.3)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download(sim, media_id)
    corrupted = download(sim, media_id).content
    started = time.monotonic()
    delayed = download(sim, media_id)

    assert len(corrupted) == len(data)
    assert sum(a != b for a, b in zip(corrupted, data, strict=True)) == 1
    assert time.monotonic() - started >= 0.3
    assert delayed.content == data


def test_redirect_fault_points_at_the_foreign_host(sim: Simulator, client: SimulatorClient) -> None:
    media_id = add_uuid_media(client, b"x", "image/jpeg")
    client.add_fault(op="download", redirect=True)

    response = requests.get(
        media_url(sim, media_id), headers=AUTH, allow_redirects=False, timeout=TIMEOUT
    )

    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{sim.foreign_url}/foreign/{media_id}?")


def test_interrupted_upload_drops_the_connection_and_stores_nothing(
    sim: Simulator, client: SimulatorClient
) -> None:
    client.add_fault(op="upload", interrupt_after=1000)

    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{sim.onprem_url}/v1/media",
            headers={**AUTH, "Content-Type": "video/mp4"},
            data=os.urandom(300_000),
            timeout=TIMEOUT,
        )

    [entry] = client.requests()
    assert (entry["op"], entry["status"], entry["provider"]) == ("upload", None, "onprem")


# --- webhook builders (pure) ------------------------------------------------------------------

SHA_HEX = hashlib.sha256(b"media").hexdigest()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("image", {"id", "mime_type", "sha256"}),
        ("video", {"id", "mime_type", "sha256"}),
        ("document", {"id", "mime_type", "sha256", "filename"}),
        ("audio", {"id", "mime_type", "sha256"}),
        ("voice", {"id", "mime_type", "sha256"}),
        ("sticker", {"id", "mime_type", "sha256"}),
    ],
)
def test_onprem_media_message_has_a_hex_sha256_and_no_url(
    kind: webhooks.MediaKind, fields: set[str]
) -> None:
    media_id = str(uuid.uuid4())

    message = webhooks.onprem_media_message(
        kind, media_id, sha256_hex=SHA_HEX, mime_type="image/jpeg"
    )

    assert set(message) == {"from", "id", "timestamp", "type", kind}
    assert message["type"] == kind
    assert message["timestamp"].isdigit()
    assert not message["id"].startswith("wamid.")
    media = message[kind]
    assert set(media) == fields
    assert media["id"] == media_id
    assert bytes.fromhex(media["sha256"]) == hashlib.sha256(b"media").digest()


def test_onprem_media_message_options() -> None:
    def build(kind: webhooks.MediaKind, **extra: Any) -> dict[str, Any]:
        return webhooks.onprem_media_message(
            kind, "u", sha256_hex=SHA_HEX, mime_type="x/y", **extra
        )

    assert build("image", caption="look")["image"]["caption"] == "look"
    assert build("document", filename="a.pdf")["document"]["filename"] == "a.pdf"
    assert build("video", message_id="ABGGX", timestamp=1700000000)["id"] == "ABGGX"
    assert build("video", sender="4915112345678")["from"] == "4915112345678"
    with pytest.raises(ValueError, match="caption"):
        build("voice", caption="no")
    with pytest.raises(ValueError, match="filename"):
        build("image", filename="no.jpg")
    with pytest.raises(ValueError, match="kind"):
        build("gif")  # type: ignore[arg-type]


def test_onprem_envelope_is_top_level_without_metadata() -> None:
    image = webhooks.onprem_media_message("image", "u1", sha256_hex=SHA_HEX, mime_type="image/png")
    status = webhooks.status_update("gBEGX", status="failed", errors=[{"code": 470}])

    payload = webhooks.onprem_envelope(
        [image, webhooks.text_message("hi", sender="1")],
        statuses=[status],
        errors=[{"code": 1014, "title": "Internal error"}],
    )

    assert set(payload) == {"contacts", "messages", "statuses", "errors"}
    assert [c["wa_id"] for c in payload["contacts"]] == [webhooks.DEFAULT_SENDER, "1"]
    assert payload["messages"][0] == image
    assert payload["statuses"] == [status]
    assert payload["errors"] == [{"code": 1014, "title": "Internal error"}]


def test_onprem_envelope_of_statuses_only() -> None:
    payload = webhooks.onprem_envelope([], statuses=[webhooks.status_update("gBEGX")])

    assert set(payload) == {"statuses"}
