"""`wa-media`: the operator's command line."""

from __future__ import annotations

import click

from worker.cli import media, records

__all__ = ["main"]


@click.group()
def main() -> None:
    """Operate the WhatsApp media archive and use the providers' media API.

    Reads the worker's variables: REDIS_URL, and the account settings (WHATSAPP_ACCOUNTS_FILE
    or the single-account variables) for the media commands.
    """


for command in (
    records.failed,
    records.replay,
    media.upload,
    media.url,
    media.download,
    media.delete,
):
    main.add_command(command)
