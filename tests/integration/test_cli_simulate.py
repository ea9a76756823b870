"""`wa-media simulate --file` and `wa-media --env-file`: a real file uploaded to the simulator's
media API and announced, signed, to a receiver that records what it got."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from devstack import webhooks
from graphsim import Simulator, SimulatorClient
from tests.integration.test_cli_media import environment
from wa_media.cli import main
from wa_media.cli.common import read_env_file
from wa_media.core.errors import ConfigError

SECRET = "the-app-secret-of-the-test"
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(30_000)
PDF = b"%PDF-1.7\n" + os.urandom(20_000)


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 200 and keeps each POST's headers and body."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[tuple[dict[str, str], bytes]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def messages(self) -> list[dict[str, Any]]:
        """Every message of every webhook received, checking each signature."""
        found = []
        for headers, body in self.received:
            assert headers["X-Hub-Signature-256"] == webhooks.sign(body, SECRET)
            value = json.loads(body)["entry"][0]["changes"][0]["value"]
            found.extend(value["messages"])
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def simulate(sim: Simulator, *args: str, **extra: str | None) -> Result:
    env: dict[str, str | None] = {
        "WHATSAPP_ACCOUNTS_FILE": "",
        **environment(sim, "cloud"),
        "WHATSAPP_APP_SECRET": SECRET,
        **extra,
    }
    return CliRunner().invoke(main, ["simulate", *args], env=env, catch_exceptions=False)


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def downloaded(sim: Simulator, media_id: str, tmp_path: Path) -> bytes:
    """The bytes the simulator serves for `media_id`, fetched with `wa-media download`."""
    out = tmp_path / f"{media_id}.bin"
    env = {"WHATSAPP_ACCOUNTS_FILE": "", **environment(sim, "cloud")}
    result = CliRunner().invoke(main, ["download", media_id, "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def test_a_file_is_uploaded_and_announced_with_its_type_and_digest(
    sim: Simulator, client: SimulatorClient, receiver: Receiver, tmp_path: Path
) -> None:
    photo = tmp_path / "parcel.jpg"
    photo.write_bytes(JPEG)
    result = simulate(sim, receiver.url, "--file", str(photo), "--messages", "2")
    assert result.exit_code == 0, result.output
    assert "1 x HTTP 200" in result.stdout
    assert f"of parcel.jpg (image/jpeg, sha256 {b64_sha256(JPEG)})" in result.stdout

    first, second = receiver.messages()
    for message in (first, second):
        assert message["type"] == "image"
        assert message["image"]["mime_type"] == "image/jpeg"
        assert message["image"]["sha256"] == b64_sha256(JPEG)
        assert message["from"] == webhooks.DEFAULT_SENDER
        # The id is the simulator's: the media API serves these very bytes under it.
        assert downloaded(sim, message["image"]["id"], tmp_path) == JPEG
    # Each message announces a media of its own.
    assert first["image"]["id"] != second["image"]["id"]


@pytest.mark.parametrize(
    ("name", "data", "extra", "kind", "mime_type"),
    [
        ("Q3 report.pdf", PDF, (), "document", "application/pdf"),
        ("note.opus", b"OggS" + os.urandom(5_000), (), "voice", "audio/ogg; codecs=opus"),
        ("scan.bin", JPEG, ("--type", "image/jpeg"), "image", "image/jpeg"),
        ("parcel.jpg", JPEG, ("--kind", "document"), "document", "image/jpeg"),
    ],
)
def test_the_message_type_follows_the_file(
    sim: Simulator,
    client: SimulatorClient,
    receiver: Receiver,
    tmp_path: Path,
    name: str,
    data: bytes,
    extra: tuple[str, ...],
    kind: str,
    mime_type: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    result = simulate(sim, receiver.url, "--file", str(path), *extra)
    assert result.exit_code == 0, result.output
    (message,) = receiver.messages()
    wire = "audio" if kind == "voice" else kind
    assert message["type"] == wire
    media = message[wire]
    assert (media["mime_type"], media["sha256"]) == (mime_type, b64_sha256(data))
    if kind == "document":
        assert media["filename"] == name
    if kind == "voice":
        assert media["voice"] is True


def test_file_refusals(
    sim: Simulator, client: SimulatorClient, receiver: Receiver, tmp_path: Path
) -> None:
    photo = tmp_path / "parcel.jpg"
    photo.write_bytes(JPEG)
    unknown = tmp_path / "data.xyz"
    unknown.write_bytes(b"x")
    both = simulate(sim, receiver.url, "--file", str(photo), "--media-id", "123")
    assert both.exit_code == 2
    assert "not both" in both.output
    text = simulate(sim, receiver.url, "--file", str(photo), "--kind", "text")
    assert text.exit_code == 2
    untyped = simulate(sim, receiver.url, "--file", str(unknown))
    assert untyped.exit_code == 2
    assert "--type" in untyped.output
    # The provider's media API refuses the type: nothing is announced.
    refused = simulate(sim, receiver.url, "--file", str(unknown), "--type", "audio/ogg")
    assert refused.exit_code == 1
    assert "Opus" in refused.stderr
    assert receiver.received == []


def test_env_file_supplies_the_secret_and_the_provider(
    sim: Simulator, client: SimulatorClient, receiver: Receiver, tmp_path: Path
) -> None:
    settings = {**environment(sim, "cloud"), "WHATSAPP_APP_SECRET": SECRET}
    env_file = tmp_path / "run.env"
    env_file.write_text(
        "# written by a test\n\n"
        + "\n".join(f"{name}={value}" for name, value in settings.items())
        + "\n",
        encoding="utf-8",
    )
    photo = tmp_path / "parcel.jpg"
    photo.write_bytes(JPEG)
    # Nothing in the environment: every variable comes from the file (and is unset again
    # after the run, since CliRunner restores what it was given).
    cleared: dict[str, str | None] = {name: None for name in settings}
    args = ["--env-file", str(env_file), "simulate", receiver.url, "--file", str(photo)]
    result = CliRunner().invoke(
        main, args, env={**cleared, "WHATSAPP_ACCOUNTS_FILE": ""}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (message,) = receiver.messages()
    assert message["image"]["sha256"] == b64_sha256(JPEG)

    # The file wins over the environment.
    wrong = {**cleared, "WHATSAPP_APP_SECRET": "not-this-one", "WHATSAPP_ACCOUNTS_FILE": ""}
    again = CliRunner().invoke(main, args, env=wrong, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert len(receiver.messages()) == 2


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text(
        "# comment\n"
        "\n"
        "PLAIN=value with spaces\n"
        "export EXPORTED=1\n"
        'DOUBLE="quoted # not a comment"\n'
        "SINGLE='x=y'\n"
        "EMPTY=\n"
        "  SPACED = around  \n"
        "PLAIN=last wins\n",
        encoding="utf-8",
    )
    assert read_env_file(path) == {
        "PLAIN": "last wins",
        "EXPORTED": "1",
        "DOUBLE": "quoted # not a comment",
        "SINGLE": "x=y",
        "EMPTY": "",
        "SPACED": "around",
    }


def test_read_env_file_names_the_bad_line_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text("GOOD=1\nthe-secret-token-value\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert str(caught.value) == f"{path} line 2: expected NAME=value"
    result = CliRunner().invoke(main, ["--env-file", str(path), "status"])
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert "the-secret-token-value" not in result.output
