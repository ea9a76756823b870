"""`wa-media reindex`: index entries for media archived before the index existed."""

from __future__ import annotations

import os
import sys

import click

from wa_media.cli.common import EXIT_UNAVAILABLE, ConfigurationError, s3_endpoint_url
from wa_media.config.settings import archive_target
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ConfigError, StorageError
from wa_media.providers.accounts import worker_accounts
from wa_media.stores.index import Reindexed
from wa_media.stores.index import reindex as reindex_store
from wa_media.stores.s3 import ArchiveStore, make_s3_client

__all__ = ["reindex"]


def _targets() -> list[ArchiveTarget]:
    """Each account's archive target, encryption included (entries are written as objects)."""
    try:
        target = archive_target(os.environ)
        accounts = worker_accounts(os.environ, target=target, delete_after_archive=False)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    return list(dict.fromkeys(account.target for account in accounts.accounts))


@click.command()
def reindex() -> None:
    """Write the index entries of every archived media that lacks them.

    Lists the sidecars under each account's bucket and prefix, reads each and writes its
    entries by wamid and by media id where they are missing (never over an entry already
    there). Safe to run again, and while the service archives. Needs the worker's S3 rights.
    Exits 3 when S3 fails (run it again: what was written stays).
    """
    s3 = make_s3_client(s3_endpoint_url())
    total = Reindexed()
    try:
        for target in _targets():
            counts = reindex_store(s3, ArchiveStore(s3, target))
            where = f"s3://{target.bucket}/{target.prefix}".rstrip("/")
            click.echo(
                f"{where}: {counts.sidecars} sidecars, {counts.written} entries written, "
                f"{counts.present} already there, {counts.taken} held by another media, "
                f"{counts.unreadable} sidecars unreadable"
            )
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
    except StorageError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    click.echo(
        f"{total.sidecars} sidecars read: {total.written} entries written, "
        f"{total.present} already there, {total.taken} held by another media, "
        f"{total.unreadable} unreadable"
    )
