"""`wa-media dead-letters` and `wa-media redeliver`: the relay's and events' dead letters."""

from __future__ import annotations

import json
import os
import sys

import click

from wa_media.cli.common import EXIT_UNAVAILABLE, ConfigurationError, state_store, when
from wa_media.cli.shown import shown
from wa_media.config import variables as v
from wa_media.core.errors import BrokerUnavailable, ConfigError, StorageError
from wa_media.stores.broker import DELIVER_TASK, DELIVERIES_QUEUE, make_celery, send_task
from wa_media.stores.deliveries import DeliveryState
from wa_media.stores.redis_client import failure_name

__all__ = ["dead_letters", "redeliver"]


def _state() -> tuple[DeliveryState, str]:
    store, url = state_store()
    try:
        max_age = v.DELIVERY_MAX_AGE.read(os.environ)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    return DeliveryState(store.redis, max_age=max_age), url


@click.command("dead-letters")
@click.option("--destination", help="Only this destination's (its name).")
@click.option("--limit", default=1000, show_default=True, help="List at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dead_letters(destination: str | None, limit: int, as_json: bool) -> None:
    """List the deliveries given up (relayed webhooks and archive events), newest first."""
    state, _ = _state()
    try:
        rows = [
            r
            for r in state.dead_letters(limit if destination is None else 10**6)
            if destination is None or r.destination == destination
        ][:limit]
    except StorageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        for r in rows:
            row = {
                "id": r.id,
                "destination": r.destination,
                "kind": r.kind,
                "reason": r.dead_reason,
                "dead_at": r.dead_at,
                "received_at": r.received_at,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "source": r.source,
            }
            click.echo(json.dumps(row, sort_keys=True))
        return
    if not rows:
        click.echo("no dead letters")
        return
    click.echo(
        f"{'id':<37} {'destination':<16} {'kind':<6} {'dead at':<20} {'tries':>5}  "
        f"{'reason':<15} last error"
    )
    for r in rows:
        click.echo(
            f"{shown(r.id):<37} {shown(r.destination):<16} {r.kind:<6} "
            f"{when(None if r.dead_at is None else str(r.dead_at)):<20} {r.attempts:>5}  "
            f"{shown(r.dead_reason or ''):<15} {shown(r.last_error or '')}"
        )
    click.echo(f"{len(rows)} dead letters")


@click.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (of --destination).")
@click.option("--destination", help="Only this destination's (its name).")
def redeliver(ids: tuple[str, ...], replay_all: bool, destination: str | None) -> None:
    """Deliver dead letters again (by id, or --all), their maximum age starting anew."""
    if bool(ids) == replay_all:
        raise click.UsageError("give delivery ids or --all, not both and not neither")
    state, url = _state()
    celery = make_celery(url)
    queued, refused = 0, []
    try:
        if replay_all:
            targets = [
                r.id
                for r in state.dead_letters(10**6)
                if destination is None or r.destination == destination
            ]
        else:
            targets = list(ids)
        for ident in targets:
            record = state.get(ident)
            if record is None or (destination is not None and record.destination != destination):
                refused.append(f"{shown(ident)} (unknown)")
                continue
            done = state.replay(ident)
            if done != 1:
                refused.append(
                    f"{shown(ident)} ({'its body is no longer held' if done < 0 else 'not dead'})"
                )
                continue
            send_task(celery, DELIVER_TASK, args=[ident], queue=DELIVERIES_QUEUE)
            queued += 1
    except (StorageError, BrokerUnavailable) as exc:
        click.echo(f"error: Redis is unavailable ({failure_name(exc)})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    click.echo(f"{queued} queued again")
    if refused:
        click.echo(f"not replayed: {', '.join(refused)}", err=True)
        sys.exit(1)
