"""`wa-media`: the operator's command line."""

from __future__ import annotations

import click

from worker.cli import media, records, simulate, status, verify
from worker.cli.common import ConfigurationError
from worker.logs import configure_logging

__all__ = ["main"]


@click.group()
def main() -> None:
    """Operate the WhatsApp media archive and use the providers' media API.

    Reads the worker's variables: REDIS_URL, the account settings (WHATSAPP_ACCOUNTS_FILE or
    the single-account variables) and the S3 ones where a command needs them. A missing or
    invalid setting stops a command with one line naming it and exit status 2.
    """
    # Warnings of the settings' checks (an accounts file others can read) go to standard error,
    # never into a command's output.
    try:
        configure_logging()
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


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
