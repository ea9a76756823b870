"""Tests of graphsim: the Cloud API simulator over real HTTP; and the pure webhook builders of
devstack/webhooks.py (the product's own: tests/unit/cli/test_cli_payloads.py)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from devstack import webhooks
from devstack.processes import wait_for
from graphsim import MediaRecord, Simulator, SimulatorClient, SimulatorError
from graphsim.records import REQUEST_LOG_LIMIT, LoggedRequest, Recorder

TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 5.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def lookup(
    sim: Simulator, media_id: str, headers: dict[str, str] | None = None, **params: str
) -> requests.Response:
    return requests.get(
        f"{sim.graph_url}/{media_id}",
        headers=AUTH if headers is None else headers,
        params=params,
        timeout=TIMEOUT,
    )


def fetch(url: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(url, headers=AUTH if headers is None else headers, timeout=TIMEOUT)


def download_url(sim: Simulator, media_id: str) -> str:
    response = lookup(sim, media_id)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def send(sim: Simulator, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{sim.graph_url}/106540352242922/messages",
        headers=AUTH if headers is None else headers,
        json=body,
        timeout=TIMEOUT,
    )


def text_body(to: str = "16505551234", text: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": text},
    }


def read_into(response: requests.Response, buffer: bytearray) -> None:
    for chunk in response.iter_content(64 * 1024):
        buffer += chunk


def error_code(response: requests.Response) -> int:
    code: int = response.json()["error"]["code"]
    return code


def address(sim: Simulator) -> tuple[str, int]:
    host, _, port = sim.media_host.rpartition(":")
    return host, int(port)


def read_to_end(sock: socket.socket) -> bytes:
    """Read until the server closes the connection (a timeout fails the test)."""
    answer = bytearray()
    while chunk := sock.recv(65536):
        answer += chunk
    return bytes(answer)


def connections(client: SimulatorClient) -> list[int]:
    return [entry["connection"] for entry in client.requests()]


# --- look-up -------------------------------------------------------------------------------


def test_lookup_describes_media_with_hex_sha256_and_int_size(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = b"\x89PNG fake image bytes"
    record = client.add_media(data, "image/png")

    response = lookup(sim, record.id)

    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["id"] == record.id
    assert body["mime_type"] == "image/png"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert isinstance(body["file_size"], int)
    assert body["file_size"] == len(data)
    url = urlsplit(body["url"])
    assert url.netloc == sim.media_host
    assert url.path == f"/lookaside/{record.id}"
    assert "ext=" in url.query
    assert "hash=" in url.query


def test_media_record_carries_both_digest_forms(client: SimulatorClient) -> None:
    record = client.add_media(b"abc", "image/jpeg", media_id="1234567890")

    assert record == MediaRecord(
        id="1234567890",
        mime_type="image/jpeg",
        sha256=hashlib.sha256(b"abc").hexdigest(),
        sha256_b64=base64.b64encode(hashlib.sha256(b"abc").digest()).decode(),
        file_size=3,
    )
    assert base64.b64decode(record.sha256_b64) == bytes.fromhex(record.sha256)


def test_generated_media_ids_look_like_meta_ids(client: SimulatorClient) -> None:
    ids = {client.add_media(b"x", "image/jpeg").id for _ in range(5)}

    assert len(ids) == 5
    assert all(media_id.isdigit() and len(media_id) in (15, 16) for media_id in ids)


def test_lookup_of_unknown_media_is_graph_error_100(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = lookup(sim, "999")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert error["type"] == "GraphMethodException"
    assert error["message"].startswith("Unsupported get request")
    assert "fbtrace_id" in error


def test_lookup_refuses_media_of_another_phone_number(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg", phone_number_id="111")

    assert lookup(sim, record.id, phone_number_id="111").status_code == 200
    assert lookup(sim, record.id).status_code == 200
    refused = lookup(sim, record.id, phone_number_id="222")
    assert refused.status_code == 400
    assert error_code(refused) == 100


def test_any_graph_version_is_served(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")

    response = fetch(f"{sim.url}/v21.0/{record.id}")

    assert response.status_code == 200


def test_unknown_route_is_a_json_404(sim: Simulator, client: SimulatorClient) -> None:
    response = fetch(f"{sim.url}/not/a/route")

    assert response.status_code == 404
    assert "error" in response.json()


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong-token", "wrong-scheme"],
)
def test_graph_endpoints_require_a_valid_bearer_token(
    sim: Simulator, client: SimulatorClient, headers: dict[str, str]
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)

    responses = [
        lookup(sim, record.id, headers=headers),
        fetch(url, headers=headers),
        send(sim, text_body(), headers=headers),
        requests.delete(f"{sim.graph_url}/{record.id}", headers=headers, timeout=TIMEOUT),
    ]

    for response in responses:
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == 190
        assert error["type"] == "OAuthException"
        assert error["message"].startswith("Error validating access token")


def test_revoked_token_fails_until_restored(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)

    client.set_tokens(["rotated-token"])
    assert lookup(sim, record.id).status_code == 401
    assert fetch(url).status_code == 401
    assert lookup(sim, record.id, headers={"Authorization": "Bearer rotated-token"}).ok

    client.set_tokens([TOKEN])
    assert lookup(sim, record.id).status_code == 200
    assert fetch(url).status_code == 200


def test_reset_restores_the_initial_token(sim: Simulator, client: SimulatorClient) -> None:
    client.set_tokens([])
    record = client.add_media(b"x", "image/jpeg")
    assert lookup(sim, record.id).status_code == 401

    client.reset()

    assert lookup(sim, record.id).status_code == 400  # the token works again; the media is gone


# --- download ------------------------------------------------------------------------------


def test_download_streams_the_bytes_with_their_type(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(700_000)  # spans several chunks
    record = client.add_media(data, "audio/ogg; codecs=opus")

    response = fetch(download_url(sim, record.id))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/ogg; codecs=opus"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.content == data


def test_download_without_token_is_401(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")

    response = fetch(download_url(sim, record.id), headers={})

    assert response.status_code == 401
    assert error_code(response) == 190


def test_download_url_with_edited_expiry_is_404(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)
    ext = urlsplit(url).query.split("&")[0].removeprefix("ext=")

    response = fetch(url.replace(f"ext={ext}", f"ext={int(ext) + 3600}"))

    assert response.status_code == 404


def test_download_of_deleted_media_is_404(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)

    deleted = requests.delete(f"{sim.graph_url}/{record.id}", headers=AUTH, timeout=TIMEOUT)

    assert deleted.json() == {"success": True}
    assert fetch(url).status_code == 404
    assert lookup(sim, record.id).status_code == 400


def test_download_url_expires_after_url_ttl() -> None:
    with Simulator(token=TOKEN, url_ttl=1.0) as short_lived, short_lived.client() as control:
        record = control.add_media(b"x", "image/jpeg")
        url = download_url(short_lived, record.id)
        ext = int(urlsplit(url).query.split("&")[0].removeprefix("ext="))
        assert time.time() < ext <= time.time() + 2
        assert fetch(url).status_code == 200

        wait_for(lambda: fetch(url).status_code == 404, timeout=5)

        assert fetch(download_url(short_lived, record.id)).status_code == 200


def test_generated_media_hashes_match_the_downloaded_bytes(
    sim: Simulator, client: SimulatorClient
) -> None:
    size = 3 * 1024 * 1024 + 17  # not a multiple of the chunk size
    record = client.add_generated_media(size, 42, "video/mp4")

    body = fetch(download_url(sim, record.id)).content

    assert len(body) == size == record.file_size
    assert hashlib.sha256(body).hexdigest() == record.sha256
    assert base64.b64encode(hashlib.sha256(body).digest()).decode() == record.sha256_b64


def test_generated_media_is_deterministic_per_seed_and_size(client: SimulatorClient) -> None:
    first = client.add_generated_media(100_000, 7, "application/pdf")
    again = client.add_generated_media(100_000, 7, "application/pdf")
    other_seed = client.add_generated_media(100_000, 8, "application/pdf")

    assert first.sha256 == again.sha256
    assert first.id != again.id
    assert other_seed.sha256 != first.sha256


def test_generated_media_honours_given_id_and_owner(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_generated_media(10, 1, "image/jpeg", media_id="42", phone_number_id="111")

    assert record.id == "42"
    assert lookup(sim, "42", phone_number_id="222").status_code == 400


def test_minted_url_is_a_webhook_url_that_downloads_without_a_lookup(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"webhook bytes", "image/jpeg")

    url = client.download_url(record.id)

    assert url.startswith(f"{sim.url}/lookaside/{record.id}?ext=")
    assert fetch(url).content == b"webhook bytes"
    assert [entry["op"] for entry in client.requests()] == ["download"]


def test_minted_url_may_be_expired_or_on_the_foreign_host(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")

    expired = client.download_url(record.id, expired=True)
    foreign = client.download_url(record.id, foreign=True)

    ext = int(urlsplit(expired).query.split("&")[0].removeprefix("ext="))
    assert ext < time.time()
    assert fetch(expired).status_code == 404
    assert foreign.startswith(f"{sim.foreign_url}/foreign/{record.id}?ext=")


def test_minting_a_url_refuses_unknown_media_and_bad_flags(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")

    with pytest.raises(SimulatorError, match="HTTP 404"):
        client.download_url("404404404")
    bad = requests.post(
        f"{sim.url}/_sim/media/{record.id}/url", json={"expired": "yes"}, timeout=TIMEOUT
    )
    assert bad.status_code == 400


# --- faults --------------------------------------------------------------------------------


def test_status_fault_applies_once_by_default(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", status=500)

    failed = lookup(sim, record.id)

    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == 131000
    assert failed.json()["error"]["type"] == "OAuthException"
    assert lookup(sim, record.id).status_code == 200


@pytest.mark.parametrize(
    ("status", "code"), [(429, 130429), (503, 131000), (404, 100), (400, 100), (401, 190)]
)
def test_status_fault_picks_a_matching_graph_code(
    sim: Simulator, client: SimulatorClient, status: int, code: int
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", status=status)

    response = lookup(sim, record.id)

    assert response.status_code == status
    assert error_code(response) == code


def test_rate_limit_fault_sends_retry_after(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="download", status=429, retry_after=7)

    response = fetch(download_url(sim, record.id))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert error_code(response) == 130429


def test_fault_error_fields_are_merged(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", status=400, error={"code": 4, "error_subcode": 2494007})

    error = lookup(sim, record.id).json()["error"]

    assert error["code"] == 4
    assert error["error_subcode"] == 2494007
    assert error["message"] == "(#4) Application request limit reached"
    assert error["type"] == "OAuthException"


def test_fault_times_counts_down_and_minus_one_is_forever(
    sim: Simulator, client: SimulatorClient
) -> None:
    first = client.add_media(b"x", "image/jpeg")
    second = client.add_media(b"y", "image/jpeg")
    client.add_fault(op="lookup", media_id=first.id, status=500, times=2)
    client.add_fault(op="lookup", media_id=second.id, status=500, times=-1)

    assert [lookup(sim, first.id).status_code for _ in range(3)] == [500, 500, 200]
    assert [lookup(sim, second.id).status_code for _ in range(4)] == [500] * 4
    assert [fault["remaining"] for fault in client.faults()] == [0, -1]


def test_fault_targets_one_media_id(sim: Simulator, client: SimulatorClient) -> None:
    target = client.add_media(b"x", "image/jpeg")
    bystander = client.add_media(b"y", "image/jpeg")
    client.add_fault(op="lookup", media_id=target.id, status=500)

    assert lookup(sim, bystander.id).status_code == 200
    assert lookup(sim, target.id).status_code == 500


def test_op_any_matches_lookups_and_downloads(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)
    client.add_fault(op="any", status=503, times=2)

    assert lookup(sim, record.id).status_code == 503
    assert fetch(url).status_code == 503
    assert fetch(url).status_code == 200


def test_removed_and_cleared_faults_no_longer_apply(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    fault_id = client.add_fault(op="lookup", status=500)
    client.remove_fault(fault_id)
    assert lookup(sim, record.id).status_code == 200

    client.add_fault(op="lookup", status=500, times=-1)
    client.clear_faults()
    assert lookup(sim, record.id).status_code == 200
    assert client.faults() == []


def test_latency_fault_delays_the_answer(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", latency=0.3)

    started = time.monotonic()
    response = lookup(sim, record.id)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_global_latency_delays_lookups_and_downloads(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.set_latency(0.2)

    started = time.monotonic()
    assert fetch(download_url(sim, record.id)).status_code == 200

    assert time.monotonic() - started >= 0.4


def test_truncate_fault_closes_after_half_the_bytes(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(600_000)
    record = client.add_media(data, "video/mp4")
    url = download_url(sim, record.id)
    client.add_fault(op="download", truncate=True)

    received = bytearray()
    with requests.get(url, headers=AUTH, timeout=TIMEOUT, stream=True) as response:
        assert response.headers["Content-Length"] == str(len(data))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            read_into(response, received)

    # The client drops the bytes of its last, short read when it raises.
    assert 0 < len(received) <= len(data) // 2
    assert bytes(received) == data[: len(received)]
    assert fetch(url).content == data


def test_trickle_fault_sends_a_few_bytes_at_a_time_and_all_of_them(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(10)
    record = client.add_media(data, "image/jpeg")
    url = download_url(sim, record.id)
    client.add_fault(op="download", media_id=record.id, trickle_bytes=4, trickle_seconds=0.2)

    arrivals: list[tuple[float, bytes]] = []
    started = time.monotonic()
    with requests.get(url, headers=AUTH, timeout=TIMEOUT, stream=True) as response:
        assert response.headers["Content-Length"] == "10"
        # A read returns what one recv gives: each piece as the server sent it.
        while piece := response.raw.read1(1024):
            arrivals.append((time.monotonic() - started, piece))

    assert b"".join(piece for _, piece in arrivals) == data
    # Each read ends where a piece did (a slow reader may find two waiting)...
    ends = set(itertools.accumulate(len(piece) for _, piece in arrivals))
    assert ends <= {4, 8, 10}
    # ... and the server waited 0.2 s before each piece after the first.
    assert arrivals[-1][0] >= 0.4
    assert fetch(url).content == data  # once only, by default


def test_trickle_fault_stops_when_the_server_stops() -> None:
    with Simulator(token=TOKEN) as simulator, simulator.client() as control:
        data = os.urandom(100)
        record = control.add_media(data, "image/jpeg")
        url = download_url(simulator, record.id)
        control.add_fault(op="download", trickle_bytes=1, trickle_seconds=30)
        with requests.get(url, headers=AUTH, timeout=TIMEOUT, stream=True) as response:
            assert response.raw.read1(1024) == data[:1]
            started = time.monotonic()
            simulator.stop()
            with pytest.raises(requests.exceptions.RequestException):
                response.content  # noqa: B018 - reading the rest is the point
            assert time.monotonic() - started < 5


def test_corrupt_fault_flips_exactly_one_byte(sim: Simulator, client: SimulatorClient) -> None:
    data = os.urandom(300_000)
    record = client.add_media(data, "image/jpeg")
    client.add_fault(op="download", media_id=record.id, corrupt=True)

    body = fetch(download_url(sim, record.id)).content

    assert len(body) == len(data)
    assert sum(a != b for a, b in zip(body, data, strict=True)) == 1
    assert hashlib.sha256(body).hexdigest() != record.sha256


def test_expired_fault_hands_out_a_dead_url(sim: Simulator, client: SimulatorClient) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", expired=True)

    dead = download_url(sim, record.id)

    assert fetch(dead).status_code == 404
    assert fetch(download_url(sim, record.id)).status_code == 200


def test_file_size_and_sha256_faults_misreport_the_lookup(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", file_size=123, sha256="00" * 32)

    body = lookup(sim, record.id).json()

    assert body["file_size"] == 123
    assert body["sha256"] == "00" * 32
    assert lookup(sim, record.id).json()["sha256"] == record.sha256


def test_foreign_fault_hands_out_the_foreign_server_and_it_records_requests(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"payload", "image/jpeg")
    client.add_fault(op="lookup", foreign=True)

    url = download_url(sim, record.id)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == sim.foreign_url
    assert parts.hostname == "127.0.0.1"
    assert parts.netloc != sim.media_host
    assert parts.path == f"/foreign/{record.id}"
    assert parts.query.startswith("ext=")

    careful = fetch(url, headers={"User-Agent": "careful-worker"})
    careless = fetch(url, headers={**AUTH, "User-Agent": "careless-worker"})

    assert careful.content == careless.content == b"payload"
    seen = client.foreign_requests()
    assert [r["headers"]["User-Agent"] for r in seen] == ["careful-worker", "careless-worker"]
    assert [r["has_authorization"] for r in seen] == [False, True]
    assert "Authorization" not in seen[0]["headers"]
    assert seen[1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0]["method"] == "GET"
    assert seen[0]["path"] == f"/foreign/{record.id}"
    assert seen[0]["query"] == parts.query
    assert client.stats()["downloads"] == {}
    assert [r["op"] for r in client.requests()] == ["lookup"]


def test_foreign_server_answers_any_method_on_foreign_paths_only(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"payload", "image/jpeg")

    posted = requests.post(f"{sim.foreign_url}/foreign/{record.id}", data=b"x", timeout=TIMEOUT)
    graph_route = fetch(f"{sim.foreign_url}/v23.0/{record.id}")
    unknown_media = fetch(f"{sim.foreign_url}/foreign/404404")
    main_server = fetch(f"{sim.url}/foreign/{record.id}")

    assert posted.content == b"payload"
    assert graph_route.status_code == 404
    assert unknown_media.status_code == 404
    assert main_server.status_code == 404
    seen = client.foreign_requests()
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", f"/foreign/{record.id}"),
        ("GET", "/foreign/404404"),
    ]


def test_redirect_fault_sends_the_download_to_the_foreign_host(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(1000)
    record = client.add_media(data, "image/jpeg")
    url = download_url(sim, record.id)
    client.add_fault(op="download", media_id=record.id, redirect=True)

    redirected = requests.get(url, headers=AUTH, timeout=TIMEOUT, allow_redirects=False)

    assert redirected.status_code == 302
    location = redirected.headers["Location"]
    assert location.startswith(f"{sim.foreign_url}/foreign/{record.id}?ext=")
    # A client that follows blindly hands its token to the foreign host.
    assert fetch(location).content == data
    [seen] = client.foreign_requests()
    assert seen["has_authorization"] is True
    assert fetch(url).content == data
    assert [(r["op"], r["status"]) for r in client.requests()] == [
        ("lookup", 200),
        ("download", 302),
        ("download", 200),
    ]


@pytest.mark.parametrize(
    "rule",
    [
        {"op": "lookup"},
        {"op": "publish", "status": 500},
        {"op": "upload", "truncate": True},
        {"op": "download", "interrupt_after": 10},
        {"op": "upload", "interrupt_after": 10, "status": 500},
        {"op": "upload", "interrupt_after": -1},
        {"op": "upload", "interrupt_after": True},
        {"op": "lookup", "truncate": True},
        {"op": "download", "expired": True},
        {"op": "lookup", "redirect": True},
        {"op": "download", "redirect": True, "truncate": True},
        {"op": "download", "redirect": "yes"},
        {"op": "download", "trickle_bytes": 1},
        {"op": "download", "trickle_seconds": 1},
        {"op": "download", "trickle_bytes": 0, "trickle_seconds": 1},
        {"op": "download", "trickle_bytes": 1, "trickle_seconds": -1},
        {"op": "lookup", "trickle_bytes": 1, "trickle_seconds": 1},
        {"op": "download", "redirect": True, "trickle_bytes": 1, "trickle_seconds": 1},
        {"op": "lookup", "status": 500, "times": 0},
        {"op": "lookup", "status": 200},
        {"op": "lookup", "error": {"code": 4}},
        {"op": "lookup", "status": "500"},
        {"op": "lookup", "status": 500, "colour": "red"},
    ],
)
def test_invalid_fault_rules_are_refused(client: SimulatorClient, rule: dict[str, Any]) -> None:
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.add_fault(**rule)


# --- sending -------------------------------------------------------------------------------


def test_send_answers_like_meta_and_records_the_message(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = send(sim, text_body(to="447700900123", text="Your file was too big"))

    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "447700900123", "wa_id": "447700900123"}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    [sent] = client.sent_messages()
    assert sent["phone_number_id"] == "106540352242922"
    assert sent["to"] == "447700900123"
    assert sent["body"] == "Your file was too big"
    assert sent["wamid"] == wamid
    assert sent["provider"] == "cloud"
    assert isinstance(sent["received_at"], float)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {**text_body(), "messaging_product": "sms"},
        {key: value for key, value in text_body().items() if key != "to"},
        {**text_body(), "type": "image"},
        {**text_body(), "text": {"body": ""}},
        {**text_body(), "text": {"body": "x" * 4097}},
        {**text_body(), "text": "hello"},
    ],
    ids=["not-object", "product", "no-to", "type", "empty", "too-long", "text-string"],
)
def test_send_refuses_a_malformed_body(
    sim: Simulator, client: SimulatorClient, body: object
) -> None:
    response = send(sim, body)

    assert response.status_code == 400
    assert error_code(response) == 100
    assert client.sent_messages() == []


def test_send_fault_131047_targets_one_recipient(sim: Simulator, client: SimulatorClient) -> None:
    client.add_fault(op="send", media_id="111", status=400, error={"code": 131047})

    refused = send(sim, text_body(to="111"))
    accepted = send(sim, text_body(to="222"))

    assert refused.status_code == 400
    assert error_code(refused) == 131047
    assert refused.json()["error"]["message"] == "(#131047) Re-engagement message"
    assert accepted.status_code == 200
    assert [m["to"] for m in client.sent_messages()] == ["222"]
    assert client.stats()["sends"] == {"111": 1, "222": 1}


def test_send_server_error_fault(sim: Simulator, client: SimulatorClient) -> None:
    client.add_fault(op="send", status=500)

    assert send(sim, text_body()).status_code == 500
    assert send(sim, text_body()).status_code == 200


# --- records, control API, concurrency ------------------------------------------------------


def test_stats_count_lookups_and_downloads_per_media(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    url = download_url(sim, record.id)
    fetch(url)
    fetch(url, headers={})
    lookup(sim, "404404")

    stats = client.stats()

    assert stats["lookups"] == {record.id: 1, "404404": 1}
    assert stats["downloads"] == {record.id: 2}


def test_request_log_records_every_graph_request_with_its_answer(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    agent = {"User-Agent": "archiver/1.0"}
    before = time.time()
    url = lookup(sim, record.id, headers={**AUTH, **agent}).json()["url"]
    fetch(url, headers={})
    client.add_fault(op="download", status=503)
    fetch(url)
    send(sim, text_body(to="447700900123"))
    send(sim, text_body(to="111"), headers={})
    send(sim, [])
    requests.delete(f"{sim.graph_url}/{record.id}", headers=AUTH, timeout=TIMEOUT)
    after = time.time()

    log = client.requests()

    assert [(e["op"], e["media_id"], e["status"], e["authorized"]) for e in log] == [
        ("lookup", record.id, 200, True),
        ("download", record.id, 401, False),
        ("download", record.id, 503, True),
        ("send", "447700900123", 200, True),
        ("send", "111", 401, False),
        ("send", None, 400, True),
        ("delete", record.id, 200, True),
    ]
    assert log[0]["user_agent"] == "archiver/1.0"
    assert log[1]["user_agent"].startswith("python-requests/")
    times = [entry["time"] for entry in log]
    assert times == sorted(times)
    assert before <= times[0]
    assert times[-1] <= after
    assert all(isinstance(entry["connection"], int) for entry in log)
    assert {entry["provider"] for entry in log} == {"cloud"}


def test_request_log_records_no_user_agent_as_null(sim: Simulator, client: SimulatorClient) -> None:
    with socket.create_connection(address(sim), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /v23.0/42 HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        answer = read_to_end(sock)

    assert answer.startswith(b"HTTP/1.1 401 ")
    [entry] = client.requests()
    assert entry["user_agent"] is None
    assert entry["authorized"] is False


def test_reset_clears_the_request_log(sim: Simulator, client: SimulatorClient) -> None:
    lookup(sim, "42")
    assert len(client.requests()) == 1

    client.reset()

    assert client.requests() == []


def logged(arrival: float, media_id: str = "1") -> LoggedRequest:
    return LoggedRequest("lookup", media_id, arrival, 200, None, True, 1)


def test_request_log_keeps_the_newest_entries_sorted_by_arrival() -> None:
    recorder = Recorder(request_log_limit=3)
    for media_id, arrival in [("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 2.0), ("e", 4.0)]:
        recorder.log_request(logged(arrival, media_id))

    assert [e["media_id"] for e in recorder.requests()] == ["d", "c", "e"]


def test_request_log_is_bounded_by_default() -> None:
    recorder = Recorder()
    for arrival in range(REQUEST_LOG_LIMIT + 1):
        recorder.log_request(logged(float(arrival)))

    log = recorder.requests()

    assert len(log) == REQUEST_LOG_LIMIT == 100_000
    assert log[0]["time"] == 1.0


def test_control_api_refuses_bad_input(sim: Simulator, client: SimulatorClient) -> None:
    no_type = requests.post(f"{sim.url}/_sim/media", data=b"x", timeout=TIMEOUT)
    assert no_type.status_code == 400
    with pytest.raises(SimulatorError, match="size"):
        client.add_generated_media(True, 1, "image/jpeg")
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.set_latency(-1)
    with pytest.raises(SimulatorError, match="HTTP 404"):
        client.remove_fault("fault-0")


def test_client_translates_connection_errors() -> None:
    with (
        SimulatorClient("http://127.0.0.1:9", timeout=1) as unreachable,
        pytest.raises(SimulatorError, match="POST"),
    ):
        unreachable.reset()


def test_concurrent_requests_are_all_answered_and_counted(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_generated_media(200_000, 3, "video/mp4")

    def lookup_and_download(_: int) -> str:
        return hashlib.sha256(fetch(download_url(sim, record.id)).content).hexdigest()

    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = list(pool.map(lookup_and_download, range(32)))

    assert digests == [record.sha256] * 32
    assert client.stats()["downloads"] == {record.id: 32}
    assert client.stats()["lookups"] == {record.id: 32}


def test_concurrent_requests_consume_a_fault_exactly_times(
    sim: Simulator, client: SimulatorClient
) -> None:
    record = client.add_media(b"x", "image/jpeg")
    client.add_fault(op="lookup", status=500, times=5)

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: lookup(sim, record.id).status_code, range(30)))

    assert sorted(statuses) == [200] * 25 + [500] * 5


# --- connections ---------------------------------------------------------------------------


def test_a_session_reuses_one_connection_across_all_kinds_of_answers(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(300_000)
    record = client.add_media(data, "video/mp4")
    client.add_fault(op="lookup", status=500)

    lookup_url = f"{sim.graph_url}/{record.id}"

    with requests.Session() as session:
        session.headers.update(AUTH)
        answers = [
            session.get(lookup_url, timeout=TIMEOUT),  # the fault
            session.get(lookup_url, headers={"Authorization": ""}, timeout=TIMEOUT),
            session.get(f"{sim.url}/no/such/route", timeout=TIMEOUT),
            # Refused before the handler reads the body: the server must skip it itself.
            session.post(f"{sim.url}/_sim/media", data=b"x" * 100_000, timeout=TIMEOUT),
            session.post(f"{sim.url}/_sim/media", data=iter([b"a", b"b"]), timeout=TIMEOUT),
            session.get(lookup_url, timeout=TIMEOUT),
        ]
        answers.append(session.get(answers[-1].json()["url"], timeout=TIMEOUT))
        answers.append(send(sim, text_body()))  # another connection

    assert [a.status_code for a in answers] == [500, 401, 404, 400, 400, 200, 200, 200]
    assert all("Content-Length" in a.headers for a in answers)
    assert answers[6].content == data
    first, second, *rest, last = connections(client)
    assert first == second == rest[0] == rest[1]
    assert last != first


def test_truncate_fault_closes_only_its_own_connection(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(600_000)
    record = client.add_media(data, "video/mp4")

    with requests.Session() as session:
        session.headers.update(AUTH)
        url = session.get(f"{sim.graph_url}/{record.id}", timeout=TIMEOUT).json()["url"]
        client.add_fault(op="download", truncate=True)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.get(url, timeout=TIMEOUT)
        assert session.get(url, timeout=TIMEOUT).content == data
        assert session.get(url, timeout=TIMEOUT).content == data

    lookup_on, truncated_on, again_on, reused_on = connections(client)
    assert lookup_on == truncated_on
    assert again_on == reused_on != truncated_on


def test_http_1_0_clients_get_one_request_per_connection(sim: Simulator) -> None:
    with socket.create_connection(address(sim), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /v23.0/42 HTTP/1.0\r\n\r\n")
        answer = read_to_end(sock)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nConnection: close" in head
    assert json.loads(body)["error"]["code"] == 190


def test_stop_closes_both_servers_and_kept_alive_connections() -> None:
    with (
        Simulator(token=TOKEN) as simulator,
        simulator.client() as control,
        requests.Session() as session,
    ):
        record = control.add_media(b"x", "image/jpeg")
        lookup_url = f"{simulator.graph_url}/{record.id}"
        foreign_url = f"{simulator.foreign_url}/foreign/{record.id}"
        assert session.get(lookup_url, headers=AUTH, timeout=TIMEOUT).ok
        assert session.get(foreign_url, timeout=TIMEOUT).ok

        simulator.stop()

        with pytest.raises(requests.ConnectionError):
            session.get(lookup_url, headers=AUTH, timeout=TIMEOUT)
        with pytest.raises(requests.ConnectionError):
            session.get(foreign_url, timeout=TIMEOUT)
        with pytest.raises(RuntimeError, match="not running"):
            _ = simulator.foreign_url


# --- python -m graphsim ----------------------------------------------------------------------


def test_module_entry_point_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "graphsim", "--port", "0", "--token", "cli-token"]
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), "no startup line within 10 s"
        line = proc.stdout.readline().strip()
        assert line.startswith("graphsim listening on http://127.0.0.1:")
        base_url = line.removeprefix("graphsim listening on ")

        with SimulatorClient(base_url) as control:
            record = control.add_media(b"x", "image/jpeg")
        response = fetch(
            f"{base_url}/v23.0/{record.id}", headers={"Authorization": "Bearer cli-token"}
        )
        assert response.status_code == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# --- devstack's webhook builders (pure) ------------------------------------------------------

SHA_B64 = base64.b64encode(hashlib.sha256(b"media").digest()).decode()


def test_signed_returns_body_and_matching_headers() -> None:
    payload = webhooks.envelope([webhooks.text_message("hi")])

    body, headers = webhooks.signed(payload, "app-secret")

    assert json.loads(body) == payload
    assert headers["X-Hub-Signature-256"] == webhooks.sign(body, "app-secret")
    assert headers["Content-Type"] == "application/json"


def test_envelope_wraps_messages_with_one_contact_per_sender() -> None:
    messages = [
        webhooks.text_message("a", sender="1"),
        webhooks.media_message("image", "9", sha256_b64=SHA_B64, mime_type="image/jpeg"),
        webhooks.text_message("b", sender="1"),
    ]
    status = webhooks.status_update("wamid.OUT", status="failed", errors=[{"code": 131047}])

    payload = webhooks.envelope(messages, statuses=[status], errors=[{"code": 131053}])

    assert payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    assert entry["id"] == webhooks.DEFAULT_WABA_ID
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": "15550783881",
        "phone_number_id": "106540352242922",
    }
    assert [c["wa_id"] for c in value["contacts"]] == ["1", webhooks.DEFAULT_SENDER]
    assert value["messages"] == messages
    assert value["statuses"][0]["errors"] == [{"code": 131047}]
    assert value["statuses"][0]["recipient_id"] == webhooks.DEFAULT_SENDER
    assert value["errors"] == [{"code": 131053}]


def test_envelope_of_statuses_only_has_no_messages() -> None:
    payload = webhooks.envelope([], statuses=[webhooks.status_update("wamid.OUT")])

    value = payload["entry"][0]["changes"][0]["value"]
    assert "messages" not in value
    assert "contacts" not in value
    assert value["statuses"][0]["status"] == "delivered"
