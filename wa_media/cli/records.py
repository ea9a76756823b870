"""`wa-media failed`, `replay` and `skipped`: the records in Redis."""

from __future__ import annotations

import json
import sys

import click

from wa_media.cli.common import EXIT_UNAVAILABLE, state_store, when
from wa_media.cli.shown import shown
from wa_media.core.errors import BrokerUnavailable, StorageError
from wa_media.core.jobs import MediaJob
from wa_media.stores.broker import (
    ARCHIVE_PRIORITY,
    ARCHIVE_TASK,
    MEDIA_QUEUE,
    make_celery,
    send_task,
)
from wa_media.stores.records import MediaRecord, MediaRef, MediaStateStore, SkippedLog
from wa_media.stores.redis_client import failure_name

__all__ = ["failed", "find", "replay", "skipped", "who"]


def who(record: MediaRecord) -> str:
    """The customer of a media record as Meta named them: phone, BSUID, username."""
    try:
        job = MediaJob.model_validate_json(record.job or "")
    except ValueError:
        return "?"
    customer = job.customer
    parts = [
        (customer.phone if customer else None)
        or (job.sender if job.direction == "inbound" else None),
        customer.user_id if customer else None,
        f"parent {customer.parent_user_id}" if customer and customer.parent_user_id else None,
        f"@{customer.username}" if customer and customer.username else None,
    ]
    text = " ".join(part for part in parts if part) or "?"
    return f"{text} ({job.direction})" if job.direction != "inbound" else text


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
    click.echo(
        f"{'media id':<24} {'number':<17} {'failed at':<20} {'tries':>5}  {'customer':<32} reason"
    )
    for member, record in rows:
        number, colon, media_id = member.partition(":")
        if not colon:  # recorded by the previous release, under the media id alone
            number, media_id = "", member
        click.echo(
            f"{shown(media_id):<24} {shown(number or '?'):<17} "
            f"{when(None if record.updated_at is None else str(record.updated_at)):<20} "
            f"{shown(str(record.attempts or 0)):>5}  {shown(who(record)):<32} "
            f"{shown(record.last_error or '')}"
        )
    click.echo(f"{len(rows)} failed")


@click.command()
@click.option("--limit", default=1000, show_default=True, help="List at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def skipped(limit: int, as_json: bool) -> None:
    """List the newest messages that looked like media but were not archived, and why."""
    store, _ = state_store()
    try:
        rows = SkippedLog(store.redis).newest(limit)
    except StorageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    if not rows:
        click.echo("no skipped media")
        return
    click.echo(f"{'received':<20} {'reason':<16} {'type':<9} {'number':<17} {'wamid':<40} detail")
    for row in rows:
        click.echo(
            f"{when(str(row.get('at', ''))):<20} {shown(row.get('reason')):<16} "
            f"{shown(row.get('type') or '?'):<9} {shown(row.get('phone_number_id') or '?'):<17} "
            f"{shown(row.get('wamid') or '?'):<40} {shown(row.get('detail'))}"
        )
    click.echo(f"{len(rows)} skipped")


def find(store: MediaStateStore, name: str) -> MediaRef | None:
    """The media `name` gives: `PHONE_NUMBER_ID:MEDIA_ID`, or a media id that one failed media
    has (in whatever account); None when it names none, or several."""
    ref = store.resolve(name)
    if ref is not None:
        return ref
    matches = [member for member, _ in store.failed(10**6) if member.endswith(f":{name}")]
    return store.resolve(matches[0]) if len(matches) == 1 else None


@click.command()
@click.argument("media_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every failed media.")
def replay(media_ids: tuple[str, ...], replay_all: bool) -> None:
    """Queue failed media (by id, PHONE_NUMBER_ID:MEDIA_ID where several accounts have the id,
    or --all) for archiving again."""
    if bool(media_ids) == replay_all:
        raise click.UsageError("give media ids or --all, not both and not neither")
    store, url = state_store()
    celery = make_celery(url)
    try:
        targets = [member for member, _ in store.failed(10**6)] if replay_all else media_ids
        queued, unknown = 0, []
        with click.progressbar(targets, label="replaying", show_pos=True) as bar:
            for name in bar:
                ref = find(store, name)
                job = None if ref is None else store.requeue(ref)
                if job is None:
                    unknown.append(name)
                    continue
                send_task(
                    celery,
                    ARCHIVE_TASK,
                    args=[job.to_wire()],
                    queue=MEDIA_QUEUE,
                    priority=ARCHIVE_PRIORITY,
                )
                queued += 1
    except (StorageError, BrokerUnavailable) as exc:
        click.echo(f"error: Redis is unavailable ({failure_name(exc)})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    click.echo(f"{queued} queued again")
    if unknown:
        listed = ", ".join(shown(media_id) for media_id in unknown)
        click.echo(
            "unknown media (no record, expired, or an id several accounts have: give "
            f"PHONE_NUMBER_ID:MEDIA_ID): {listed}",
            err=True,
        )
        sys.exit(1)
