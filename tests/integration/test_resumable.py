"""Resumable uploads through the Cloud API and 360dialog: resuming from the server's offset."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import APP, provider_for
from wa_media.core.errors import MediaRejected, PermanentError, TemporaryError
from wa_media.core.provider import ProviderKind
from wa_media.providers.graphflow import GraphFlowClient
from wa_media.providers.resumable import RESUME_ATTEMPTS, upload_through_session
from wa_media.providers.transfer import FileBody, ProgressCounter

SIZE = 400_000


@pytest.fixture(params=["cloud", "360dialog"])
def kind(request: pytest.FixtureRequest) -> ProviderKind:
    chosen: ProviderKind = request.param
    return chosen


@pytest.fixture
def uploader(
    sim: Simulator, client: SimulatorClient, kind: ProviderKind
) -> Iterator[GraphFlowClient]:
    with provider_for(sim, kind) as provider:
        assert isinstance(provider, GraphFlowClient)
        yield provider


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(SIZE))
    return path


def only_session(client: SimulatorClient, path: Path) -> dict[str, Any]:
    [session] = client.upload_sessions()
    assert session["complete"] is True
    assert session["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert session["file_offset"] == session["file_length"] == path.stat().st_size
    assert (session["file_name"], session["file_type"]) == (path.name, "video/mp4")
    return session


def logged(client: SimulatorClient) -> list[tuple[str, int | None]]:
    return [(entry["op"], entry["status"]) for entry in client.requests()]


def test_an_interrupted_upload_resumes_from_the_servers_offset(
    uploader: GraphFlowClient, client: SimulatorClient, kind: ProviderKind, clip: Path
) -> None:
    client.add_fault(op="upload", media_id=clip.name, interrupt_after=150_000)
    moved: list[int] = []

    handle = uploader.upload_resumable(clip, "video/mp4", moved.append)

    session = only_session(client, clip)
    assert handle == session["handle"]
    assert session["provider"] == kind
    assert session["owner"] == (APP if kind == "cloud" else None)
    # Each byte is counted once, though the first 150 000 may have been sent twice.
    assert sum(moved) == SIZE
    assert logged(client) == [
        ("upload_session", 200),  # open
        ("upload", None),  # broken off after 150 000 bytes
        ("upload_session", 200),  # the server's offset
        ("upload", 200),  # the rest, from that offset
    ]


def test_a_5xx_answer_resumes_too(
    uploader: GraphFlowClient, client: SimulatorClient, clip: Path
) -> None:
    client.add_fault(op="upload", media_id=clip.name, status=503)

    handle = uploader.upload_resumable(clip, "video/mp4")

    assert handle == only_session(client, clip)["handle"]
    assert logged(client) == [
        ("upload_session", 200),
        ("upload", 503),
        ("upload_session", 200),
        ("upload", 200),
    ]


class HeadStart:
    """A provider's sessions whose server already holds the file's start when sending begins."""

    def __init__(self, provider: GraphFlowClient, head: Path) -> None:
        self.provider = provider
        self.head = head

    def open_session(self, file_name: str, file_length: int, file_type: str) -> str:
        session_id = self.provider.open_session(file_name, file_length, file_type)
        with self.head.open("rb") as file:
            self.provider.send_from(session_id, 0, FileBody(file, 0, ProgressCounter(None)))
        return session_id

    def session_offset(self, session_id: str) -> int:
        return self.provider.session_offset(session_id)

    def send_from(self, session_id: str, offset: int, body: FileBody) -> dict[str, Any]:
        return self.provider.send_from(session_id, offset, body)


def test_an_offset_mismatch_resumes_from_the_servers_offset(
    uploader: GraphFlowClient, client: SimulatorClient, clip: Path, tmp_path: Path
) -> None:
    head = tmp_path / "head"
    head.write_bytes(clip.read_bytes()[:100_000])

    handle = upload_through_session(HeadStart(uploader, head), clip, "video/mp4")

    assert handle == only_session(client, clip)["handle"]
    assert logged(client) == [
        ("upload_session", 200),
        ("upload", 200),  # the head start
        ("upload", 400),  # sent from 0, the server is at 100 000
        ("upload_session", 200),
        ("upload", 200),
    ]


def test_breaks_without_end_give_up_after_the_bound(
    uploader: GraphFlowClient, client: SimulatorClient, clip: Path
) -> None:
    client.add_fault(op="upload", media_id=clip.name, interrupt_after=1000, times=-1)

    with pytest.raises(TemporaryError, match="resumable upload failed"):
        uploader.upload_resumable(clip, "video/mp4")

    sends = [status for op, status in logged(client) if op == "upload"]
    assert sends == [None] * (RESUME_ATTEMPTS + 1)
    [session] = client.upload_sessions()
    assert session["file_offset"] == 1000 * (RESUME_ATTEMPTS + 1)


def test_a_session_error_that_is_no_mismatch_is_raised(
    uploader: GraphFlowClient, client: SimulatorClient, clip: Path
) -> None:
    client.add_fault(op="upload", media_id=clip.name, status=400)

    with pytest.raises(PermanentError, match="HTTP 400"):
        uploader.upload_resumable(clip, "video/mp4")

    assert logged(client) == [("upload_session", 200), ("upload", 400), ("upload_session", 200)]


@pytest.mark.parametrize(
    ("mime_type", "reason"),
    [
        ("audio/ogg", "not supported for resumable upload"),
        ("image/png", "over the 5242880-byte limit"),
    ],
)
def test_a_refused_file_opens_no_session(
    uploader: GraphFlowClient, client: SimulatorClient, tmp_path: Path, mime_type: str, reason: str
) -> None:
    path = tmp_path / "file"
    with path.open("wb") as file:
        file.truncate(5 * 1024 * 1024 + 1)

    with pytest.raises(MediaRejected, match=reason):
        uploader.upload_resumable(path, mime_type)

    assert client.requests() == []
