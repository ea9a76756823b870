"""`wa-media simulate URL`: send signed sample webhooks to a deployment."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
from typing import Any

import click
import requests

from graphsim import webhooks
from worker.cli.common import EXIT_FAILED, EXIT_UNAVAILABLE

__all__ = ["simulate"]

KINDS = ("text", "too-big", *webhooks.MEDIA_KINDS)
_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}


def sample_message(kind: str, media_id: str | None, sender: str) -> dict[str, Any]:
    """One inbound message of `kind`; media ids are made up unless given."""
    if kind == "text":
        return webhooks.text_message("wa-media simulate", sender=sender)
    if kind == "too-big":
        return webhooks.too_big_message(sender=sender)
    media = media_id or secrets.token_hex(8)
    digest = base64.b64encode(hashlib.sha256(media.encode()).digest()).decode()
    message = webhooks.media_message(
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
        return webhooks.encode(webhooks.onprem_envelope(messages))
    return webhooks.encode(webhooks.envelope(messages, phone_number_id=phone_number_id))


@click.command()
@click.argument("url")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="text",
    show_default=True,
    help="Message type; media ids are made up unless --media-id is given, so the "
    "worker records those media as failed.",
)
@click.option("--count", default=1, show_default=True, help="How many webhooks to send.")
@click.option("--messages", default=1, show_default=True, help="Messages in each webhook.")
@click.option("--media-id", help="A real media id to announce (with a media --kind).")
@click.option("--phone-number-id", default=webhooks.DEFAULT_PHONE_NUMBER_ID, show_default=True)
@click.option("--sender", default=webhooks.DEFAULT_SENDER, show_default=True)
@click.option("--token", help="Post to /webhook/<token> (360dialog, On-Premises), unsigned.")
@click.option("--onprem", is_flag=True, help="Send On-Premises payloads (with --token).")
@click.option("--secret", help="App secret to sign with (default: WHATSAPP_APP_SECRET).")
def simulate(
    url: str,
    kind: str,
    count: int,
    messages: int,
    media_id: str | None,
    phone_number_id: str,
    sender: str,
    token: str | None,
    onprem: bool,
    secret: str | None,
) -> None:
    """Send signed sample webhooks to the deployment at URL (its base, e.g. https://host).

    Exits 1 when any webhook is not answered 200, 3 when the deployment cannot be reached.
    """
    if onprem and not token:
        raise click.UsageError("--onprem payloads go to /webhook/<token>: pass --token")
    if token is None:
        configured = os.environ.get("WHATSAPP_APP_SECRET", "").split(",")[0].strip()
        secret = secret or configured
        if not secret:
            raise click.UsageError("pass --secret or set WHATSAPP_APP_SECRET (or use --token)")
    endpoint = url.rstrip("/") + ("/webhook" if token is None else f"/webhook/{token}")
    answers: dict[int, int] = {}
    with requests.Session() as session:
        for _ in range(count):
            batch = [sample_message(kind, media_id, sender) for _ in range(messages)]
            body = _payload(batch, phone_number_id, onprem)
            headers = {"Content-Type": "application/json"}
            if secret is not None and token is None:
                headers["X-Hub-Signature-256"] = webhooks.sign(body, secret)
            try:
                answer = session.post(endpoint, data=body, headers=headers, timeout=10)
            except requests.RequestException as exc:
                click.echo(f"error: {url} cannot be reached ({type(exc).__name__})", err=True)
                sys.exit(EXIT_UNAVAILABLE)
            answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
    summary = ", ".join(f"{n} x HTTP {status}" for status, n in sorted(answers.items()))
    click.echo(f"sent {count} webhook(s) of {messages} {kind} message(s): {summary}")
    if set(answers) != {200}:
        sys.exit(EXIT_FAILED)
