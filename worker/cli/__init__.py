"""`wa-media`: the operator's command line."""

from __future__ import annotations

import click

from worker.cli import media, records, simulate, status, verify

__all__ = ["main"]


@click.group()
def main() -> None:
    """Operate the WhatsApp media archive and use the providers' media API.

    Reads the worker's variables: REDIS_URL, the account settings (WHATSAPP_ACCOUNTS_FILE or
    the single-account variables) and the S3 ones where a command needs them.
    """


for command in (
    status.status,
    records.failed,
    records.replay,
    records.skipped,
    verify.verify,
    simulate.simulate,
    media.upload,
    media.url,
    media.download,
    media.delete,
):
    main.add_command(command)
