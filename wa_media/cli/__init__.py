"""`wa-media`: the operator's command line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from wa_media.cli import deliveries, find, media, records, reindex, simulate, status, verify
from wa_media.cli.common import ConfigurationError, read_env_file
from wa_media.config.variables import LOG_LEVEL
from wa_media.core.errors import ConfigError
from wa_media.observability.logs import configure_logging

__all__ = ["main"]


@click.group()
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read variables from this file of NAME=value lines first; they take precedence "
    "over the environment (e.g. .run/run.env, written by `make run`).",
)
def main(env_file: Path | None) -> None:
    """Operate the WhatsApp media archive and use the providers' media API.

    Reads the worker's variables: REDIS_URL, the account settings (WHATSAPP_ACCOUNTS_FILE or
    the single-account variables) and the S3 ones where a command needs them; from the
    environment, or from --env-file. A missing or invalid setting stops a command with one line
    naming it and exit status 2.
    """
    # Warnings of the settings' checks (an accounts file others can read) go to standard error,
    # never into a command's output.
    try:
        configure_logging(LOG_LEVEL.read(os.environ))
        if env_file is not None:
            os.environ.update(read_env_file(env_file))
    except (ConfigError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None


for command in (
    status.status,
    records.failed,
    records.replay,
    records.skipped,
    deliveries.dead_letters,
    deliveries.redeliver,
    verify.verify,
    find.find,
    reindex.reindex,
    simulate.simulate,
    media.upload,
    media.url,
    media.download,
    media.delete,
):
    main.add_command(command)
