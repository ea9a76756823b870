"""`wa-media`: the operator's command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from kombu.exceptions import KombuError
from redis import Redis
from redis.exceptions import RedisError

from worker.accounts import Account, worker_accounts
from worker.celery_app import ARCHIVE_PRIORITY, ARCHIVE_TASK, MEDIA_QUEUE, make_celery
from worker.config import DEFAULT_REDIS_URL
from worker.env import ConfigError, positive_int, read, redis_url
from worker.errors import ArchiveError, PermanentError, StorageError
from worker.mediatypes import guess_mime_type
from worker.provider import Progress, Provider
from worker.providers import make_provider
from worker.state import MediaStateStore

__all__ = ["main"]

EXIT_UNAVAILABLE = 3


def _store() -> tuple[MediaStateStore, str]:
    try:
        url = read(os.environ, "REDIS_URL", redis_url, DEFAULT_REDIS_URL)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return MediaStateStore(Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)), url


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
def main() -> None:
    """Operate the WhatsApp media archive and use the providers' media API.

    Reads the worker's variables: REDIS_URL, and the account settings (WHATSAPP_ACCOUNTS_FILE
    or the single-account variables) for the media commands.
    """


def _account(phone_number_id: str | None) -> Account:
    environ = os.environ
    try:
        accounts = worker_accounts(
            environ,
            # The media commands never write to S3; the archive's bucket is not needed.
            bucket=environ.get("S3_BUCKET", "").strip() or "-",
            prefix="",
            delete_after_archive=False,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if phone_number_id is not None:
        account = accounts.for_number(phone_number_id)
        if account is None:
            raise click.UsageError(f"no configured account serves {phone_number_id}")
        return account
    if len(accounts.accounts) > 1:
        raise click.UsageError("several accounts are configured: pass --phone-number-id")
    return accounts.accounts[0]


def _provider(phone_number_id: str | None) -> tuple[Provider, str | None]:
    account = _account(phone_number_id)
    try:
        max_bytes = read(os.environ, "MAX_MEDIA_BYTES", positive_int, "104857600")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    provider = make_provider(account.connection, max_media_bytes=max_bytes)
    return provider, phone_number_id or account.phone_number_id


@contextmanager
def _api_errors() -> Iterator[None]:
    """Turn a provider's refusal into a clear message and exit status."""
    try:
        yield
    except ArchiveError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(1 if isinstance(exc, PermanentError) else EXIT_UNAVAILABLE)


@contextmanager
def _progress(label: str, length: int | None) -> Iterator[Progress | None]:
    """A progress bar on standard error for a transfer of `length` bytes (when known)."""
    if not length:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


_NUMBER = click.option(
    "--phone-number-id", help="The account to use (needed when several are configured)."
)


@main.command()
@click.option("--limit", default=1000, show_default=True, help="List at most this many.")
def failed(limit: int) -> None:
    """List failed media with the reason each failed."""
    store, _ = _store()
    try:
        rows = store.failed(limit)
    except StorageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if not rows:
        click.echo("no failed media")
        return
    click.echo(f"{'media id':<24} {'failed at':<20} {'tries':>5}  reason")
    for media_id, record in rows:
        click.echo(
            f"{media_id:<24} {_when(record.get('updated_at')):<20} "
            f"{record.get('attempts', '0'):>5}  {record.get('last_error', '')}"
        )
    click.echo(f"{len(rows)} failed")


@main.command()
@click.argument("media_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every failed media.")
def replay(media_ids: tuple[str, ...], replay_all: bool) -> None:
    """Queue failed media (by id, or --all) for archiving again."""
    if bool(media_ids) == replay_all:
        raise click.UsageError("give media ids or --all, not both and not neither")
    store, url = _store()
    celery = make_celery(url)
    try:
        targets = [media_id for media_id, _ in store.failed(10**6)] if replay_all else media_ids
        queued, unknown = 0, []
        with click.progressbar(targets, label="replaying", show_pos=True) as bar:
            for media_id in bar:
                job = store.requeue(media_id)
                if job is None:
                    unknown.append(media_id)
                    continue
                celery.send_task(
                    ARCHIVE_TASK,
                    args=[job.model_dump(mode="json")],
                    queue=MEDIA_QUEUE,
                    priority=ARCHIVE_PRIORITY,
                )
                queued += 1
    except (StorageError, RedisError, KombuError, OSError) as exc:
        click.echo(f"error: Redis is unavailable ({type(exc).__name__})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    click.echo(f"{queued} queued again")
    if unknown:
        click.echo(f"unknown media (no record, or expired): {', '.join(unknown)}", err=True)
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "mime_type", help="MIME type (default: from the file's extension).")
@click.option("--resumable", is_flag=True, help="Upload through a resumable session.")
@_NUMBER
def upload(file: Path, mime_type: str | None, resumable: bool, phone_number_id: str | None) -> None:
    """Upload FILE; print the media id (or, with --resumable, the file handle)."""
    mime_type = mime_type or guess_mime_type(file)
    if mime_type is None:
        raise click.UsageError(f"cannot tell the type of {file.name}: pass --type")
    provider, number = _provider(phone_number_id)
    with _api_errors(), _progress("uploading", file.stat().st_size) as progress:
        if resumable:
            result = provider.upload_resumable(file, mime_type, progress)
        else:
            result = provider.upload(file, mime_type, number, progress)
    click.echo(result)


@main.command()
@click.argument("media_id")
@_NUMBER
def url(media_id: str, phone_number_id: str | None) -> None:
    """Print the provider's look-up of MEDIA_ID (with its short-lived URL) as JSON."""
    provider, number = _provider(phone_number_id)
    with _api_errors():
        click.echo(json.dumps(provider.media_url(media_id, number), indent=2))


@main.command()
@click.argument("media_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the bytes.",
)
@_NUMBER
def download(media_id: str, output: Path, phone_number_id: str | None) -> None:
    """Download MEDIA_ID to a file, verified against the provider's sha256 and size."""
    provider, number = _provider(phone_number_id)
    partial = output.with_name(output.name + ".part")
    with _api_errors():
        size = None
        if provider.connection.kind != "onprem":
            size = provider.media_url(media_id, number).get("file_size")
        try:
            with partial.open("wb") as out, _progress("downloading", _int(size)) as progress:
                fetched = provider.download(media_id, number, out, progress)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(output)
    click.echo(f"{output} ({output.stat().st_size} bytes, sha256 {fetched.sha256 or '-'})")


def _int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


@main.command()
@click.argument("media_id")
@_NUMBER
def delete(media_id: str, phone_number_id: str | None) -> None:
    """Delete MEDIA_ID from the provider."""
    provider, number = _provider(phone_number_id)
    with _api_errors():
        provider.delete(media_id, number)
    click.echo(f"deleted {media_id}")
