"""`wa-media failed` and `replay`: the media records in Redis."""

from __future__ import annotations

import sys

import click
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from worker.celery_app import ARCHIVE_PRIORITY, ARCHIVE_TASK, MEDIA_QUEUE, make_celery
from worker.cli.common import EXIT_UNAVAILABLE, state_store, when
from worker.errors import StorageError

__all__ = ["failed", "replay"]


@click.command()
@click.option("--limit", default=1000, show_default=True, help="List at most this many.")
def failed(limit: int) -> None:
    """List failed media with the reason each failed."""
    store, _ = state_store()
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
            f"{media_id:<24} {when(record.get('updated_at')):<20} "
            f"{record.get('attempts', '0'):>5}  {record.get('last_error', '')}"
        )
    click.echo(f"{len(rows)} failed")


@click.command()
@click.argument("media_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every failed media.")
def replay(media_ids: tuple[str, ...], replay_all: bool) -> None:
    """Queue failed media (by id, or --all) for archiving again."""
    if bool(media_ids) == replay_all:
        raise click.UsageError("give media ids or --all, not both and not neither")
    store, url = state_store()
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
