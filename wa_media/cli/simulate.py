"""`wa-media simulate URL`: send signed sample webhooks to a deployment."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

from wa_media.cli import payloads
from wa_media.cli.common import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    ConfigurationError,
    api_errors,
    progress_bar,
    provider_for,
)
from wa_media.config.variables import WHATSAPP_APP_SECRET
from wa_media.core.errors import ConfigError
from wa_media.core.layout import base_mime_type
from wa_media.core.mediatypes import OGG_OPUS, UPLOAD_TYPES, guess_mime_type
from wa_media.core.provider import Provider

__all__ = ["simulate"]

KINDS = ("text", "too-big", *payloads.MEDIA_KINDS)
_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}


@dataclass(frozen=True)
class Upload:
    """A file to upload before each message announces it: its type and digest."""

    path: Path
    mime_type: str
    sha256_b64: str

    @classmethod
    def read(cls, path: Path, mime_type: str | None) -> Upload:
        """The file's MIME type (given, or from its extension) and its SHA-256."""
        mime_type = mime_type or guess_mime_type(path)
        if mime_type is None:
            raise click.UsageError(f"cannot tell the type of {path.name}: pass --type")
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
        return cls(path, mime_type, base64.b64encode(digest.digest()).decode())

    def kind(self) -> str:
        """The message type a customer's app would send this file as."""
        category = UPLOAD_TYPES.get(base_mime_type(self.mime_type), "document")
        if category == "audio" and self.mime_type == OGG_OPUS:
            return "voice"
        return category


def file_message(
    kind: str, upload: Upload, media_id: str, sender: str, timestamp: int | None = None
) -> dict[str, Any]:
    """A message announcing an uploaded file with its real type and digest (pure)."""
    return payloads.media_message(
        kind,  # type: ignore[arg-type]  # one of MEDIA_KINDS
        media_id,
        sha256_b64=upload.sha256_b64,
        mime_type=upload.mime_type,
        sender=sender,
        timestamp=timestamp,
        filename=upload.path.name if kind == "document" else None,
    )


def sample_message(kind: str, media_id: str | None, sender: str) -> dict[str, Any]:
    """One inbound message of `kind`; media ids are made up unless given."""
    if kind == "text":
        return payloads.text_message("wa-media simulate", sender=sender)
    if kind == "too-big":
        return payloads.too_big_message(sender=sender)
    media = media_id or secrets.token_hex(8)
    digest = base64.b64encode(hashlib.sha256(media.encode()).digest()).decode()
    message = payloads.media_message(
        kind,  # type: ignore[arg-type]  # one of MEDIA_KINDS, checked by click.Choice
        media,
        sha256_b64=digest,
        mime_type=_MIME[kind],
        sender=sender,
    )
    if media_id is not None:
        # We cannot know a real media's digest: let the provider's look-up announce it.
        del message[message["type"]]["sha256"]
    return message


def _payload(messages: list[dict[str, Any]], phone_number_id: str, onprem: bool) -> bytes:
    if onprem:
        return payloads.encode(payloads.onprem_envelope(messages))
    return payloads.encode(payloads.envelope(messages, phone_number_id=phone_number_id))


def _from_env_or_file(what: str, env_name: str | None, file: str | None) -> str | None:
    """A secret read from the variable `env_name` or from `file` (its first line); never from
    the command line, which other users of the host can read (ps, /proc, shell history)."""
    if env_name is not None and file is not None:
        raise click.UsageError(f"give the {what} by --{what}-env or --{what}-file, not both")
    if file is not None:
        try:
            with open(file, encoding="utf-8") as stream:
                value = stream.readline().strip()
        except OSError as exc:
            raise click.UsageError(f"cannot read the {what} file {file}: {exc.strerror}") from None
        if not value:
            raise click.UsageError(f"the {what} file {file} is empty")
        return value
    if env_name is not None:
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise click.UsageError(f"{env_name} (--{what}-env) is not set")
        return value
    return None


@click.command()
@click.argument("url")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Message type (default: text, or with --file the type its MIME type makes it); "
    "media ids are made up unless --media-id or --file is given, so the worker records "
    "those media as failed.",
)
@click.option("--count", default=1, show_default=True, help="How many webhooks to send.")
@click.option("--messages", default=1, show_default=True, help="Messages in each webhook.")
@click.option("--media-id", help="A real media id to announce (with a media --kind).")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Upload this file through the media API (the configured provider, or the "
    "simulator) for each message, which announces it with its real MIME type and SHA-256.",
)
@click.option("--type", "mime_type", help="The --file's MIME type (default: from its extension).")
@click.option("--phone-number-id", default=payloads.DEFAULT_PHONE_NUMBER_ID, show_default=True)
@click.option("--sender", default=payloads.DEFAULT_SENDER, show_default=True)
@click.option(
    "--token-env",
    metavar="NAME",
    help="Post to /webhook/<token> (360dialog, On-Premises), unsigned, with the token held by "
    "this variable.",
)
@click.option(
    "--token-file",
    metavar="PATH",
    help="As --token-env, the token read from the first line of this file.",
)
@click.option("--onprem", is_flag=True, help="Send On-Premises payloads (with a token).")
@click.option(
    "--secret-env",
    metavar="NAME",
    help="The variable holding the app secret to sign with (default: WHATSAPP_APP_SECRET, "
    "its first secret).",
)
@click.option(
    "--secret-file",
    metavar="PATH",
    help="The app secret to sign with, read from the first line of this file.",
)
def simulate(
    url: str,
    kind: str | None,
    count: int,
    messages: int,
    media_id: str | None,
    file: Path | None,
    mime_type: str | None,
    phone_number_id: str,
    sender: str,
    token_env: str | None,
    token_file: str | None,
    onprem: bool,
    secret_env: str | None,
    secret_file: str | None,
) -> None:
    """Send signed sample webhooks to the deployment at URL (its base, e.g. https://host).

    Secrets are never taken from the command line: the app secret comes from
    WHATSAPP_APP_SECRET, another variable (--secret-env) or a file (--secret-file); a path
    token from a variable (--token-env) or a file (--token-file).

    Exits 1 when any webhook is not answered 200 or the upload of --file is refused, 2 on a
    usage or configuration error, 3 when the deployment or the provider cannot be reached.
    """
    token = _from_env_or_file("token", token_env, token_file)
    if onprem and not token:
        raise click.UsageError("--onprem payloads go to /webhook/<token>: pass --token-env")
    secret = None
    if token is None:
        secret = _from_env_or_file("secret", secret_env, secret_file)
        if secret is None:
            try:
                configured = WHATSAPP_APP_SECRET.read_optional(os.environ)
            except ConfigError as exc:
                raise ConfigurationError(str(exc)) from None
            if not configured:
                raise click.UsageError(
                    "set WHATSAPP_APP_SECRET, or pass --secret-env or --secret-file "
                    "(or a token: --token-env, --token-file)"
                )
            secret = configured[0]
    upload = None
    if file is not None:
        if media_id is not None:
            raise click.UsageError("give --file or --media-id, not both")
        upload = Upload.read(file, mime_type)
        kind = kind or upload.kind()
        if kind not in payloads.MEDIA_KINDS:
            raise click.UsageError(f"--file is announced by a media message, not --kind {kind}")
        provider, number = provider_for(phone_number_id)
    elif mime_type is not None:
        raise click.UsageError("--type goes with --file")
    kind = kind or "text"
    endpoint = url.rstrip("/") + ("/webhook" if token is None else f"/webhook/{token}")
    answers: dict[int, int] = {}
    with requests.Session() as session:
        for _ in range(count):
            if upload is None:
                batch = [sample_message(kind, media_id, sender) for _ in range(messages)]
            else:
                batch = [
                    file_message(kind, upload, _upload(provider, number, upload), sender)
                    for _ in range(messages)
                ]
            body = _payload(batch, phone_number_id, onprem)
            headers = {"Content-Type": "application/json"}
            if secret is not None and token is None:
                headers["X-Hub-Signature-256"] = payloads.sign(body, secret)
            try:
                answer = session.post(endpoint, data=body, headers=headers, timeout=10)
            except requests.RequestException as exc:
                click.echo(f"error: {url} cannot be reached ({type(exc).__name__})", err=True)
                sys.exit(EXIT_UNAVAILABLE)
            answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
    summary = ", ".join(f"{n} x HTTP {status}" for status, n in sorted(answers.items()))
    what = f"{kind} message(s)"
    if upload is not None:
        what += f" of {upload.path.name} ({upload.mime_type}, sha256 {upload.sha256_b64})"
    click.echo(f"sent {count} webhook(s) of {messages} {what}: {summary}")
    if set(answers) != {200}:
        sys.exit(EXIT_FAILED)


def _upload(provider: Provider, number: str | None, upload: Upload) -> str:
    """Upload the file as a new media of the account serving `number`; its id."""
    size = upload.path.stat().st_size
    with api_errors(), progress_bar("uploading", size) as progress:
        media_id = provider.upload(upload.path, upload.mime_type, number, progress)
    click.echo(f"uploaded {upload.path.name} as media {media_id}", err=True)
    return media_id
