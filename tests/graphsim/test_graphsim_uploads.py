"""Tests of graphsim's Cloud API uploads: form-data media and Graph resumable upload sessions."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import time
from typing import Any

import pytest
import requests

from graphsim import Simulator, SimulatorClient
from graphsim.blocking import LookupBlocker
from graphsim.mediatypes import upload_problem
from graphsim.sessions import OffsetMismatch, SessionStore, UploadTooLong

TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OAUTH = {"Authorization": f"OAuth {TOKEN}"}
TIMEOUT = 5.0
PHONE = "106540352242922"
APP = "1234567890"


def upload(
    sim: Simulator,
    data: bytes,
    mime_type: str | None,
    *,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    file: tuple[Any, ...] = ("file.bin", data) if mime_type is None else ("f", data, mime_type)
    return requests.post(
        f"{sim.graph_url}/{PHONE}/media",
        headers=AUTH if headers is None else headers,
        data={"messaging_product": "whatsapp"} if form is None else form,
        files={"file": file},
        timeout=TIMEOUT,
    )


def graph_error(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def create(
    sim: Simulator, length: int, *, name: str = "report.pdf", file_type: str = "application/pdf"
) -> str:
    response = requests.post(
        f"{sim.graph_url}/{APP}/uploads",
        headers=OAUTH,
        params={"file_name": name, "file_length": str(length), "file_type": file_type},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    session_id: str = response.json()["id"]
    return session_id


def put(
    sim: Simulator, session_id: str, offset: int, data: bytes, *, versioned: bool = False
) -> requests.Response:
    base = sim.graph_url if versioned else sim.url
    return requests.post(
        f"{base}/{session_id}",
        headers={**OAUTH, "file_offset": str(offset)},
        data=data,
        timeout=TIMEOUT,
    )


def status(sim: Simulator, session_id: str) -> requests.Response:
    return requests.get(f"{sim.graph_url}/{session_id}", headers=OAUTH, timeout=TIMEOUT)


# --- form-data uploads ------------------------------------------------------------------------


def test_uploaded_file_becomes_a_media_that_looks_up_and_downloads(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(300_000)

    response = upload(
        sim, data, "image/jpeg", form={"messaging_product": "whatsapp", "type": "image/jpeg"}
    )

    assert response.status_code == 200
    assert list(response.json()) == ["id"]
    media_id = response.json()["id"]
    assert media_id.isdigit()
    looked_up = requests.get(f"{sim.graph_url}/{media_id}", headers=AUTH, timeout=TIMEOUT).json()
    assert looked_up["sha256"] == hashlib.sha256(data).hexdigest()
    assert looked_up["mime_type"] == "image/jpeg"
    assert looked_up["file_size"] == len(data)
    downloaded = requests.get(looked_up["url"], headers=AUTH, timeout=TIMEOUT)
    assert downloaded.content == data
    [entry] = [e for e in client.requests() if e["op"] == "upload"]
    assert (entry["media_id"], entry["status"], entry["provider"]) == (media_id, 200, "cloud")


def test_uploaded_media_belongs_to_the_phone_number(
    sim: Simulator, client: SimulatorClient
) -> None:
    media_id = upload(sim, b"%PDF-1.7", "application/pdf").json()["id"]

    other = requests.get(
        f"{sim.graph_url}/{media_id}",
        headers=AUTH,
        params={"phone_number_id": "999"},
        timeout=TIMEOUT,
    )

    assert other.status_code == 400
    assert graph_error(other)["code"] == 100


def test_the_type_field_gives_the_mime_type_of_an_untyped_file(
    sim: Simulator, client: SimulatorClient
) -> None:
    response = upload(
        sim, b"abc", None, form={"messaging_product": "whatsapp", "type": "text/plain"}
    )

    assert response.status_code == 200
    media_id = response.json()["id"]
    lookup = requests.get(f"{sim.graph_url}/{media_id}", headers=AUTH, timeout=TIMEOUT)
    assert lookup.json()["mime_type"] == "text/plain"


@pytest.mark.parametrize(
    ("mime_type", "size"),
    [
        ("image/gif", 10),
        ("application/zip", 10),
        ("audio/ogg; codecs=vorbis", 10),
        ("audio/ogg", 10),
        ("image/jpeg", 5 * 1024 * 1024 + 1),
        ("image/webp", 100 * 1024 + 1),
        ("audio/mpeg", 16 * 1024 * 1024 + 1),
    ],
    ids=["gif", "zip", "vorbis", "bare-ogg", "big-image", "big-static-sticker", "big-audio"],
)
def test_a_type_outside_the_table_or_over_its_limit_is_131053(
    sim: Simulator, client: SimulatorClient, mime_type: str, size: int
) -> None:
    response = upload(sim, b"\0" * size, mime_type)

    assert response.status_code == 400
    error = graph_error(response)
    assert error["code"] == 131053
    assert error["error_data"]["details"]
    assert [e["status"] for e in client.requests()] == [400]


def test_ogg_audio_is_taken_with_the_opus_codec(sim: Simulator, client: SimulatorClient) -> None:
    response = upload(sim, b"OggS", "audio/ogg; codecs=opus")

    assert response.status_code == 200
    lookup = requests.get(f"{sim.graph_url}/{response.json()['id']}", headers=AUTH, timeout=TIMEOUT)
    assert lookup.json()["mime_type"] == "audio/ogg; codecs=opus"


def test_a_mime_type_mismatch_is_131053(sim: Simulator, client: SimulatorClient) -> None:
    response = upload(
        sim, b"x", "image/png", form={"messaging_product": "whatsapp", "type": "image/jpeg"}
    )

    assert response.status_code == 400
    assert graph_error(response)["code"] == 131053
    assert "mismatch" in graph_error(response)["error_data"]["details"]


@pytest.mark.parametrize(
    ("form", "files"),
    [
        ({}, {"file": ("a", b"x", "image/png")}),
        ({"messaging_product": "sms"}, {"file": ("a", b"x", "image/png")}),
        ({"messaging_product": "whatsapp"}, {"other": ("a", b"x", "image/png")}),
        ({"messaging_product": "whatsapp"}, {"file": ("a", b"x")}),
    ],
    ids=["no-product", "wrong-product", "no-file", "no-type"],
)
def test_a_malformed_upload_is_code_100(
    sim: Simulator, client: SimulatorClient, form: dict[str, str], files: dict[str, Any]
) -> None:
    response = requests.post(
        f"{sim.graph_url}/{PHONE}/media", headers=AUTH, data=form, files=files, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert graph_error(response)["code"] == 100


def test_upload_accepts_bearer_and_oauth_and_refuses_others(
    sim: Simulator, client: SimulatorClient
) -> None:
    assert upload(sim, b"x", "text/plain", headers=OAUTH).status_code == 200
    refused = upload(sim, b"x", "text/plain", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert graph_error(refused)["code"] == 190


def webp(animated: bool, size: int) -> bytes:
    flags = 0x02 if animated else 0x00
    chunk = b"VP8X" + struct.pack("<I", 10) + bytes([flags]) + b"\0" * 9
    body = b"WEBP" + chunk
    return b"RIFF" + struct.pack("<I", size - 8) + body + b"\0" * (size - 8 - len(body))


def test_an_animated_sticker_may_be_bigger_than_a_static_one(
    sim: Simulator, client: SimulatorClient
) -> None:
    size = 300 * 1024

    assert upload(sim, webp(True, size), "image/webp").status_code == 200
    assert upload(sim, webp(False, size), "image/webp").status_code == 400
    assert upload(sim, webp(True, 500 * 1024 + 1), "image/webp").status_code == 400


def test_upload_faults_answer_with_their_status(sim: Simulator, client: SimulatorClient) -> None:
    client.add_fault(op="upload", status=503)

    failed = upload(sim, b"x", "text/plain")

    assert failed.status_code == 503
    assert graph_error(failed)["code"] == 131000
    assert upload(sim, b"x", "text/plain").status_code == 200


def test_interrupted_form_upload_drops_the_connection_and_stores_nothing(
    sim: Simulator, client: SimulatorClient
) -> None:
    client.add_fault(op="upload", interrupt_after=100)

    with pytest.raises(requests.ConnectionError):
        upload(sim, os.urandom(200_000), "video/mp4")

    [entry] = client.requests()
    assert (entry["op"], entry["status"], entry["media_id"]) == ("upload", None, None)
    assert upload(sim, b"x", "text/plain").status_code == 200


# --- resumable upload sessions ---------------------------------------------------------------


def test_a_session_takes_the_file_in_pieces_and_answers_a_handle(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(250_000)
    session_id = create(sim, len(data))
    assert session_id.startswith("upload:")
    assert status(sim, session_id).json() == {"id": session_id, "file_offset": 0}

    first = put(sim, session_id, 0, data[:100_000], versioned=True)
    assert first.json() == {"id": session_id, "file_offset": 100_000}
    assert status(sim, session_id).json()["file_offset"] == 100_000
    last = put(sim, session_id, 100_000, data[100_000:])

    assert last.status_code == 200
    handle = last.json()["h"]
    assert isinstance(handle, str)
    assert handle
    [session] = client.upload_sessions()
    assert session["id"] == session_id
    assert session["complete"] is True
    assert session["handle"] == handle
    assert session["sha256"] == hashlib.sha256(data).hexdigest()
    assert session["file_offset"] == session["file_length"] == len(data)
    assert (session["file_name"], session["file_type"]) == ("report.pdf", "application/pdf")
    assert (session["provider"], session["owner"]) == ("cloud", APP)


def test_an_incomplete_session_has_no_sha256_yet(sim: Simulator, client: SimulatorClient) -> None:
    session_id = create(sim, 10)
    put(sim, session_id, 0, b"01234")

    [session] = client.upload_sessions()

    assert session["complete"] is False
    assert session["sha256"] is None
    assert session["handle"] is None
    assert session["file_offset"] == 5


def test_a_wrong_offset_is_400_with_the_servers_offset(
    sim: Simulator, client: SimulatorClient
) -> None:
    session_id = create(sim, 10)
    put(sim, session_id, 0, b"0123")

    behind = put(sim, session_id, 0, b"0123456789")
    ahead = put(sim, session_id, 6, b"6789")

    for response in (behind, ahead):
        assert response.status_code == 400
        error = graph_error(response)
        assert error["code"] == 100
        assert error["error_data"]["file_offset"] == 4
        assert "4" in error["message"]
    assert status(sim, session_id).json()["file_offset"] == 4


def test_interrupted_session_upload_keeps_the_bytes_taken_and_resumes(
    sim: Simulator, client: SimulatorClient
) -> None:
    data = os.urandom(400_000)
    session_id = create(sim, len(data), name="clip.mp4", file_type="video/mp4")
    client.add_fault(op="upload", media_id="clip.mp4", interrupt_after=150_000)

    with pytest.raises(requests.ConnectionError):
        put(sim, session_id, 0, data)

    offset = status(sim, session_id).json()["file_offset"]
    assert offset == 150_000
    done = put(sim, session_id, offset, data[offset:])
    assert "h" in done.json()
    [session] = client.upload_sessions()
    assert session["sha256"] == hashlib.sha256(data).hexdigest()
    assert [(e["op"], e["status"]) for e in client.requests()] == [
        ("upload_session", 200),
        ("upload", None),
        ("upload_session", 200),
        ("upload", 200),
    ]


def test_an_upload_fault_targets_one_file_name(sim: Simulator, client: SimulatorClient) -> None:
    target = create(sim, 3, name="target.pdf")
    bystander = create(sim, 3, name="other.pdf")
    client.add_fault(op="upload", media_id="target.pdf", status=500)

    assert put(sim, bystander, 0, b"abc").status_code == 200
    assert put(sim, target, 0, b"abc").status_code == 500
    assert put(sim, target, 0, b"abc").status_code == 200


def test_more_bytes_than_declared_are_refused(sim: Simulator, client: SimulatorClient) -> None:
    session_id = create(sim, 3)

    response = put(sim, session_id, 0, b"abcd")

    assert response.status_code == 400
    assert graph_error(response)["code"] == 100
    assert status(sim, session_id).json()["file_offset"] == 0


def test_a_completed_session_answers_its_handle_again(
    sim: Simulator, client: SimulatorClient
) -> None:
    session_id = create(sim, 3)
    handle = put(sim, session_id, 0, b"abc").json()["h"]

    assert put(sim, session_id, 3, b"").json() == {"h": handle}


@pytest.mark.parametrize(
    "params",
    [
        {"file_length": "3", "file_type": "application/pdf"},
        {"file_name": "a", "file_length": "0", "file_type": "application/pdf"},
        {"file_name": "a", "file_length": "x", "file_type": "application/pdf"},
        {"file_name": "a", "file_length": "\u00b2", "file_type": "application/pdf"},
        {"file_name": "a", "file_length": "\u0663", "file_type": "application/pdf"},
        {"file_name": "a", "file_length": "3", "file_type": "audio/ogg"},
        {"file_name": "a", "file_length": "3"},
    ],
    ids=[
        "no-name",
        "zero-length",
        "bad-length",
        "superscript-length",
        "arabic-indic-length",
        "bad-type",
        "no-type",
    ],
)
def test_a_session_needs_name_length_and_type(
    sim: Simulator, client: SimulatorClient, params: dict[str, str]
) -> None:
    response = requests.post(
        f"{sim.graph_url}/{APP}/uploads", headers=OAUTH, params=params, timeout=TIMEOUT
    )

    assert response.status_code == 400
    assert graph_error(response)["code"] == 100
    assert client.upload_sessions() == []


@pytest.mark.parametrize("offset", ["-1", "\u00b2", "1\u00b9", "+0", "x"])
def test_a_file_offset_is_ascii_digits(
    sim: Simulator, client: SimulatorClient, offset: str
) -> None:
    session_id = create(sim, 3)

    response = requests.post(
        f"{sim.url}/{session_id}",
        headers={**OAUTH, "file_offset": offset},
        data=b"abc",
        timeout=TIMEOUT,
    )

    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert status(sim, session_id).json()["file_offset"] == 0


def test_unknown_session_and_bad_credentials(sim: Simulator, client: SimulatorClient) -> None:
    session_id = create(sim, 3)

    unknown = status(sim, "upload:nope")
    unknown_post = put(sim, "upload:nope", 0, b"abc")
    bad_offset = requests.post(
        f"{sim.url}/{session_id}",
        headers={**OAUTH, "file_offset": "-1"},
        data=b"abc",
        timeout=TIMEOUT,
    )
    unauthorized = requests.get(
        f"{sim.graph_url}/{session_id}", headers={"Authorization": "OAuth x"}, timeout=TIMEOUT
    )

    assert (unknown.status_code, graph_error(unknown)["code"]) == (400, 100)
    assert unknown_post.status_code == 400
    assert bad_offset.status_code == 400
    assert (unauthorized.status_code, graph_error(unauthorized)["code"]) == (401, 190)
    assert requests.get(f"{sim.graph_url}/{session_id}", headers=AUTH, timeout=TIMEOUT).ok


def test_reset_forgets_sessions(sim: Simulator, client: SimulatorClient) -> None:
    create(sim, 3)

    client.reset()

    assert client.upload_sessions() == []


# --- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "size", "refused"),
    [
        ("image/jpeg", 5 * 1024 * 1024, False),
        ("IMAGE/PNG", 10, False),
        ("audio/ogg", 10, True),
        ("audio/ogg; codecs=opus", 10, False),
        ('AUDIO/OGG; Codecs="OPUS"', 10, False),
        ("audio/ogg; codecs=vorbis", 10, True),
        ("application/pdf", 100 * 1024 * 1024, False),
        ("application/pdf", 100 * 1024 * 1024 + 1, True),
        ("video/3gpp", 16 * 1024 * 1024 + 1, True),
        ("", 1, True),
    ],
)
def test_upload_problem(content_type: str, size: int, refused: bool) -> None:
    assert (upload_problem(content_type, size, b"") is not None) is refused


def test_session_store_appends_at_the_current_offset_only() -> None:
    store = SessionStore()
    session_id = store.create("cloud", "app", "a.pdf", 4, "application/pdf")

    assert store.append(session_id, 0, b"ab") == (2, None)
    with pytest.raises(OffsetMismatch) as mismatch:
        store.append(session_id, 0, b"ab")
    assert mismatch.value.expected == 2
    with pytest.raises(UploadTooLong):
        store.append(session_id, 2, b"cde")
    offset, handle = store.append(session_id, 2, b"cd")
    assert offset == 4
    assert handle is not None
    assert handle.startswith("4:")
    with pytest.raises(KeyError):
        store.append("upload:nope", 0, b"")


def test_lookup_blocker_blocks_after_the_limit_within_the_window() -> None:
    blocker = LookupBlocker(limit=2, window=10.0)
    now = time.time()

    blocker.record_failure("k", now)
    assert blocker.blocked_for("k", now) is None
    blocker.record_failure("k", now + 1)

    assert blocker.blocked_for("k", now + 2) == pytest.approx(8.0)
    assert blocker.blocked_for("other", now + 2) is None
    assert blocker.blocked_for("k", now + 10.5) is None
    with pytest.raises(ValueError, match="positive"):
        blocker.configure(0, 1.0)


def test_a_form_over_the_upload_limit_is_refused_before_it_is_read(
    sim: Simulator, client: SimulatorClient
) -> None:
    host, _, port = sim.media_host.rpartition(":")
    head = (
        f"POST /v23.0/{PHONE}/media HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\nConnection: close\r\n\r\n"
    )

    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode())
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk

    status_line, _, rest = bytes(answer).partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400 ")
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == 131053
