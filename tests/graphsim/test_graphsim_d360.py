"""Tests of graphsim's 360dialog dialect under `/d360`, over real HTTP."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
import requests

from devstack.processes import wait_for
from graphsim import Simulator, SimulatorClient, SimulatorError

KEY = {"D360-API-KEY": "d360-key"}
TIMEOUT = 5.0


def lookup(
    sim: Simulator, media_id: str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.get(
        f"{sim.d360_url}/{media_id}", headers=KEY if headers is None else headers, timeout=TIMEOUT
    )


def d360_download_url(sim: Simulator, lookaside_url: str) -> str:
    """What a 360dialog client does: put its base URL in place of the lookaside host."""
    assert lookaside_url.startswith(sim.url + "/")
    return sim.d360_url + lookaside_url.removeprefix(sim.url)


def download(
    sim: Simulator, media_id: str, headers: dict[str, str] | None = None
) -> requests.Response:
    response = lookup(sim, media_id)
    assert response.status_code == 200, response.text
    url = d360_download_url(sim, response.json()["url"])
    return requests.get(url, headers=KEY if headers is None else headers, timeout=TIMEOUT)


def send(sim: Simulator, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{sim.d360_url}/messages",
        headers=KEY if headers is None else headers,
        json=body,
        timeout=TIMEOUT,
    )


def text_body(to: str = "16505551234", text: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text},
    }


def error_text(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    text: str = body["error"]
    return text


# --- media ----------------------------------------------------------------------------------


def test_lookup_answers_metas_json_with_a_lookaside_url(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"image bytes", "image/jpeg")

    response = lookup(sim, record.id)

    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "url"} == {
        "messaging_product": "whatsapp",
        "mime_type": "image/jpeg",
        "sha256": record.sha256,
        "file_size": record.file_size,
        "id": record.id,
    }
    assert body["url"].startswith(f"{sim.url}/lookaside/{record.id}?ext=")


def test_download_through_the_360dialog_base_url_with_the_key(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(300_000)
    record = client.add_media(data, "video/mp4")

    response = download(sim, record.id)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.content == data
    assert [(e["op"], e["provider"], e["status"]) for e in client.requests()] == [
        ("lookup", "360dialog", 200),
        ("download", "360dialog", 200),
    ]
    assert client.stats()["downloads"] == {record.id: 1}


def test_expired_url_is_404_in_360dialog_shape(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", expired=True)

    response = download(sim, record.id)

    assert response.status_code == 404
    assert error_text(response)


def test_unknown_media_is_404_in_360dialog_shape(sim: Simulator, client: SimulatorClient) -> None:
    response = lookup(sim, "404404")

    assert response.status_code == 404
    assert "404404" in error_text(response)


@pytest.mark.parametrize(
    "headers",
    [{}, {"D360-API-KEY": "wrong"}, {"Authorization": "Bearer sim-token"}],
    ids=["missing", "wrong-key", "cloud-token"],
)
def test_every_endpoint_needs_a_valid_key(
    sim: Simulator, client: SimulatorClient, headers: dict[str, str]
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = d360_download_url(sim, lookup(sim, record.id).json()["url"])

    responses = [
        lookup(sim, record.id, headers=headers),
        requests.get(url, headers=headers, timeout=TIMEOUT),
        send(sim, text_body(), headers=headers),
        requests.delete(f"{sim.d360_url}/{record.id}", headers=headers, timeout=TIMEOUT),
        requests.post(
            f"{sim.d360_url}/media",
            headers=headers,
            data={"messaging_product": "whatsapp"},
            files={"file": ("a", b"x", "text/plain")},
            timeout=TIMEOUT,
        ),
        requests.post(f"{sim.d360_url}/uploads", headers=headers, timeout=TIMEOUT),
    ]

    for response in responses:
        assert response.status_code == 401
        assert error_text(response) == "Invalid api_key"


def test_the_cloud_download_path_refuses_the_key(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")

    response = requests.get(lookup(sim, record.id).json()["url"], headers=KEY, timeout=TIMEOUT)

    assert response.status_code == 401


def test_keys_can_be_replaced_and_reset(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")

    client.set_d360_keys(["rotated"])
    assert lookup(sim, record.id).status_code == 401
    assert lookup(sim, record.id, headers={"D360-API-KEY": "rotated"}).status_code == 200
    client.reset()
    client.add_media(b"x", "image/jpeg", media_id=record.id)
    assert lookup(sim, record.id).status_code == 200
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.set_d360_keys([""])


def test_delete_forgets_the_media(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")

    deleted = requests.delete(f"{sim.d360_url}/{record.id}", headers=KEY, timeout=TIMEOUT)

    assert deleted.json() == {"success": True}
    assert lookup(sim, record.id).status_code == 404


def test_unknown_route_answers_in_360dialog_shape(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.get(f"{sim.d360_url}/a/b/c", headers=KEY, timeout=TIMEOUT)

    assert response.status_code == 404
    assert error_text(response)


# --- sending --------------------------------------------------------------------------------


def test_send_answers_like_the_cloud_api_and_records_the_provider(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = send(sim, text_body(to="447700900123", text="too big"))

    assert response.status_code == 200
    body = response.json()
    assert body["contacts"] == [{"input": "447700900123", "wa_id": "447700900123"}]
    wamid = body["messages"][0]["id"]
    [sent] = client.sent_messages()
    assert sent["provider"] == "360dialog"
    assert sent["phone_number_id"] is None
    assert (sent["to"], sent["body"], sent["wamid"]) == ("447700900123", "too big", wamid)
    [entry] = client.requests()
    assert (entry["op"], entry["media_id"], entry["provider"]) == (
        "send",
        "447700900123",
        "360dialog",
    )


def test_a_malformed_send_is_400_in_360dialog_shape(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = send(sim, {**text_body(), "messaging_product": "sms"})

    assert response.status_code == 400
    assert "messaging_product" in error_text(response)
    assert client.sent_messages() == []


# --- faults ---------------------------------------------------------------------------------


def test_status_faults_answer_in_360dialog_shape(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", status=500)
    client.add_fault(op="send", media_id="111", status=400, error={"code": 131047})
    client.add_fault(op="download", status=429, retry_after=7)
    client.add_fault(op="upload", status=503, error={"message": "try later"})

    failed_lookup = lookup(sim, record.id)
    failed_send = send(sim, text_body(to="111"))
    failed_download = download(sim, record.id)
    failed_upload = requests.post(
        f"{sim.d360_url}/media",
        headers=KEY,
        data={"messaging_product": "whatsapp"},
        files={"file": ("a", b"x", "text/plain")},
        timeout=TIMEOUT,
    )

    assert (failed_lookup.status_code, error_text(failed_lookup)) == (500, "Internal Server Error")
    assert failed_send.status_code == 400
    assert "131047" in error_text(failed_send)
    assert failed_download.status_code == 429
    assert failed_download.headers["Retry-After"] == "7"
    assert (failed_upload.status_code, error_text(failed_upload)) == (503, "try later")


def test_download_faults_truncate_and_corrupt(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(300_000)
    record = client.add_media(data, "video/mp4")
    client.add_fault(op="download", corrupt=True)
    client.add_fault(op="download", truncate=True)

    corrupted = download(sim, record.id)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download(sim, record.id)

    assert len(corrupted.content) == len(data)
    assert hashlib.sha256(corrupted.content).hexdigest() != record.sha256
    assert download(sim, record.id).content == data


# --- the block on failed look-ups -----------------------------------------------------------


def test_a_key_is_blocked_after_five_lookups_of_unknown_media(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.set_d360_keys(["d360-key", "other-key"])

    failures = [lookup(sim, f"unknown-{n}").status_code for n in range(5)]
    blocked = lookup(sim, record.id)

    assert failures == [404] * 5
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "blocked"}
    assert 3500 < int(blocked.headers["Retry-After"]) <= 3600
    assert lookup(sim, record.id, headers={"D360-API-KEY": "other-key"}).status_code == 200
    lookups = [e for e in client.requests() if e["op"] == "lookup"]
    assert [e["status"] for e in lookups] == [404] * 5 + [429, 200]
    assert all(e["provider"] == "360dialog" for e in lookups)
    assert sum(client.stats()["lookups"].values()) == 7


def test_known_media_lookups_do_not_count_towards_the_block(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.set_d360_blocking(2)

    assert [lookup(sim, record.id).status_code for _ in range(5)] == [200] * 5
    assert lookup(sim, "unknown").status_code == 404
    assert lookup(sim, record.id).status_code == 200
    assert lookup(sim, "unknown").status_code == 404
    assert lookup(sim, record.id).status_code == 429


def test_the_block_lifts_when_failures_leave_the_window(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.set_d360_blocking(1, window=0.5)

    assert lookup(sim, "unknown").status_code == 404
    assert lookup(sim, record.id).status_code == 429

    wait_for(lambda: lookup(sim, record.id).status_code == 200, timeout=5)


def test_reset_lifts_blocks_and_restores_the_default_limit(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.set_d360_blocking(1)
    lookup(sim, "unknown")
    assert lookup(sim, record.id).status_code == 429

    client.reset()
    record = client.add_media(b"x", "image/jpeg")

    assert [lookup(sim, f"u{n}").status_code for n in range(5)] == [404] * 5
    assert lookup(sim, record.id).status_code == 429
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.set_d360_blocking(0)


# --- uploads --------------------------------------------------------------------------------


def test_form_upload_becomes_a_media(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.post(
        f"{sim.d360_url}/media",
        headers=KEY,
        data={"messaging_product": "whatsapp"},
        files={"file": ("doc.pdf", b"%PDF-1.7 ...", "application/pdf")},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    media_id = response.json()["id"]
    assert download(sim, media_id).content == b"%PDF-1.7 ..."


def test_form_upload_of_an_unsupported_type_is_400(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.post(
        f"{sim.d360_url}/media",
        headers=KEY,
        data={"messaging_product": "whatsapp"},
        files={"file": ("a.gif", b"GIF89a", "image/gif")},
        timeout=TIMEOUT,
    )

    assert response.status_code == 400
    assert "image/gif" in error_text(response)


def test_resumable_session_with_an_interruption(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(200_000)
    created = requests.post(
        f"{sim.d360_url}/uploads",
        headers=KEY,
        params={"file_name": "big.mp4", "file_length": str(len(data)), "file_type": "video/mp4"},
        timeout=TIMEOUT,
    )
    session_id = created.json()["id"]
    session_url = f"{sim.d360_url}/{session_id}"
    client.add_fault(op="upload", interrupt_after=50_000)

    with pytest.raises(requests.ConnectionError):
        requests.post(session_url, headers={**KEY, "file_offset": "0"}, data=data, timeout=TIMEOUT)
    state = requests.get(session_url, headers=KEY, timeout=TIMEOUT).json()
    wrong = requests.post(
        session_url, headers={**KEY, "file_offset": "0"}, data=data, timeout=TIMEOUT
    )
    done = requests.post(
        session_url,
        headers={**KEY, "file_offset": str(state["file_offset"])},
        data=data[state["file_offset"] :],
        timeout=TIMEOUT,
    )

    assert session_id.startswith("upload:")
    assert state == {"id": session_id, "file_offset": 50_000}
    assert wrong.status_code == 400
    assert "50000" in error_text(wrong)
    assert set(done.json()) == {"h"}
    [session] = client.upload_sessions()
    assert session["provider"] == "360dialog"
    assert session["sha256"] == hashlib.sha256(data).hexdigest()


def test_unknown_session_is_404_in_360dialog_shape(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.get(f"{sim.d360_url}/upload:nope", headers=KEY, timeout=TIMEOUT)

    assert response.status_code == 404
    assert "upload:nope" in error_text(response)
